//! The static assets (`/`, `/client.js`, …): every one answers `HEAD` as it
//! answers `GET`, minus the body. The asset routes are those the OpenAPI
//! document tags `assets`, so a new asset is covered without editing this.

use crate::helpers::spawn_app;

/// The asset paths the OpenAPI document lists, with their GET operation.
async fn documented_assets(app: &crate::helpers::TestApp) -> Vec<(String, serde_json::Value)> {
    let document = app.get_json("/openapi.json").await;
    document["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .filter(|(_, item)| {
            item["get"]["tags"]
                .as_array()
                .is_some_and(|tags| tags.iter().any(|tag| tag == "assets"))
        })
        .map(|(path, item)| (path.clone(), item.clone()))
        .collect()
}

#[actix_web::test]
async fn every_static_asset_answers_head_with_the_headers_of_get_and_no_body() {
    // Arrange
    let app = spawn_app().await;
    let assets = documented_assets(&app).await;
    let paths: Vec<&str> = assets.iter().map(|(path, _)| path.as_str()).collect();
    for expected in ["/", "/client.js"] {
        assert!(
            paths.contains(&expected),
            "{expected} is not tagged assets: {paths:?}"
        );
    }

    for (path, item) in &assets {
        // Act
        let get = app.get(path).await;
        let head = app
            .api_client
            .head(app.url(path))
            .send()
            .await
            .expect("HEAD sent");

        // Assert
        assert_eq!(get.status(), 200, "GET {path}");
        assert_eq!(head.status(), 200, "HEAD {path}");
        assert!(item.get("head").is_some(), "HEAD {path} is not documented");
        let mut get_headers = get.headers().clone();
        let mut head_headers = head.headers().clone();
        // The one header that may differ between two answers.
        get_headers.remove("date");
        head_headers.remove("date");
        assert_eq!(
            head_headers, get_headers,
            "HEAD {path} has the headers of GET"
        );
        let body = get.bytes().await.expect("GET body");
        assert!(!body.is_empty(), "GET {path} has a body");
        assert_eq!(
            head.headers()["content-length"].to_str().unwrap(),
            body.len().to_string(),
            "HEAD {path} tells the size of the GET body"
        );
        assert!(
            head.bytes().await.expect("HEAD body").is_empty(),
            "HEAD {path} sends no body"
        );
    }
}
