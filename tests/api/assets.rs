//! The static assets (`/`, `/client.js`, `/react.js`, the `.d.ts` files, the
//! vendored React, …): every one answers `HEAD` as it answers `GET`, minus
//! the body, with the content type of its kind, and every module they
//! import is served too. The asset routes are those the OpenAPI document
//! tags `assets`, so a new asset is covered without editing this. Each
//! carries an `ETag`, and a revalidation that names it is answered `304`.

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
    for expected in [
        "/",
        "/client.js",
        "/client.d.ts",
        "/react.js",
        "/react.d.ts",
        "/vendor/react.js",
        "/vendor/react-dom-client.js",
        "/vendor/react-shared.js",
    ] {
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

#[actix_web::test]
async fn a_browser_revalidating_an_unchanged_asset_gets_304_without_the_file() {
    // Arrange
    let app = spawn_app().await;
    let conditional = |path: &str, tag: &str| {
        app.api_client
            .get(app.url(path))
            .header("if-none-match", tag)
            .send()
    };

    for (path, item) in documented_assets(&app).await {
        let first = app.get(&path).await;
        let etag = first.headers()["etag"].to_str().unwrap().to_owned();
        assert!(
            etag.starts_with('"') && etag.ends_with('"') && etag.len() > 2,
            "{path}: a strong tag, {etag}"
        );
        assert!(
            item["get"]["responses"].get("304").is_some(),
            "{path}: 304 documented"
        );

        // Act
        let same = conditional(&path, &etag).await.expect("sent");
        let weak = conditional(&path, &format!("W/{etag}, \"other\""))
            .await
            .expect("sent");
        let any = conditional(&path, "*").await.expect("sent");
        let stale = conditional(&path, "\"0123456789abcdef\"")
            .await
            .expect("sent");

        // Assert
        for (what, answer) in [
            ("its tag", same),
            ("its weak tag in a list", weak),
            ("*", any),
        ] {
            assert_eq!(answer.status().as_u16(), 304, "{path} with {what}");
            assert_eq!(
                answer.headers()["etag"].to_str().unwrap(),
                etag,
                "{path} with {what}"
            );
            assert_eq!(
                answer.headers().get("cache-control"),
                first.headers().get("cache-control"),
                "{path} with {what}: the 304 renews the same freshness"
            );
            assert!(
                answer.bytes().await.unwrap().is_empty(),
                "{path} with {what}"
            );
        }
        assert_eq!(stale.status().as_u16(), 200, "{path} with another tag");
        assert_eq!(
            stale.bytes().await.unwrap(),
            first.bytes().await.unwrap(),
            "{path}: the whole file again"
        );
    }
}

/// The content type an asset's path calls for.
fn expected_content_type(path: &str) -> &'static str {
    if path.ends_with(".d.ts") {
        "application/typescript; charset=utf-8"
    } else if path.ends_with(".js") {
        "text/javascript; charset=utf-8"
    } else {
        "text/html; charset=utf-8"
    }
}

#[actix_web::test]
async fn every_static_asset_has_the_content_type_of_its_kind() {
    let app = spawn_app().await;
    for (path, _) in documented_assets(&app).await {
        let response = app.get(&path).await;
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            expected_content_type(&path),
            "GET {path}"
        );
    }
}

/// The module specifiers a script imports statically (`from "…"`), as
/// written, whitespace or none before the quote (the vendored bundles are
/// minified).
fn imports(source: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = source;
    while let Some(at) = rest.find("from") {
        rest = &rest[at + "from".len()..];
        let after = rest.trim_start();
        if let Some(quoted) = after.strip_prefix('"')
            && let Some(end) = quoted.find('"')
        {
            found.push(quoted[..end].to_owned());
        }
    }
    found
}

/// `specifier` imported by the module at `path`, as a path on the broker;
/// `None` for a bare specifier (an import map or bundler provides it).
fn resolve(path: &str, specifier: &str) -> Option<String> {
    if specifier.starts_with('/') {
        Some(specifier.to_owned())
    } else if let Some(relative) = specifier.strip_prefix("./") {
        let directory = &path[..=path.rfind('/').expect("an absolute path")];
        Some(format!("{directory}{relative}"))
    } else {
        None
    }
}

#[actix_web::test]
async fn every_module_a_served_script_or_the_demo_page_imports_is_served_as_javascript() {
    // Arrange: the page's import map sends the bare names to the broker's
    // own React; everything else a module imports is a path.
    let app = spawn_app().await;
    let page = app.get("/").await.text().await.expect("the page");
    let map_start = page
        .find(r#"<script type="importmap">"#)
        .expect("the page has an import map");
    let map_text = &page[map_start..];
    let map_text = &map_text[map_text.find('>').unwrap() + 1..map_text.find("</script>").unwrap()];
    let import_map: serde_json::Value =
        serde_json::from_str(map_text).expect("the import map is JSON");
    let mapped = import_map["imports"].as_object().expect("imports");
    for name in ["react", "react-dom/client"] {
        assert!(mapped.contains_key(name), "the import map maps {name}");
    }
    let mut pending: Vec<String> = mapped
        .values()
        .map(|target| target.as_str().expect("a path").to_owned())
        .chain(["/react.js".to_owned()])
        .collect();
    let mut seen = std::collections::BTreeSet::new();

    // Act and assert: follow every import from there.
    while let Some(path) = pending.pop() {
        if !seen.insert(path.clone()) {
            continue;
        }
        let response = app.get(&path).await;
        assert_eq!(response.status(), 200, "{path} is imported but not served");
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/javascript; charset=utf-8",
            "{path}"
        );
        let source = response.text().await.expect("a module");
        for specifier in imports(&source) {
            match resolve(&path, &specifier) {
                Some(target) => pending.push(target),
                None => assert!(
                    mapped.contains_key(&specifier),
                    "{path} imports {specifier:?}, which the page's import map does not map"
                ),
            }
        }
    }
    for module in [
        "/react.js",
        "/client.js",
        "/vendor/react.js",
        "/vendor/react-dom-client.js",
        "/vendor/react-shared.js",
    ] {
        assert!(seen.contains(module), "{module} was reached: {seen:?}");
    }
}

/// The integration guide tells a bundled application which files to copy
/// (a `for f in …; do curl` line). A module missing from it breaks the
/// application's build (`Could not resolve "./tabs.js"`), so the list must
/// hold every module `/react.js` reaches by a relative import.
#[actix_web::test]
async fn the_guides_copy_list_holds_every_module_the_hooks_import() {
    // Arrange
    let app = spawn_app().await;
    let guide = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/guides/integration.md"),
    )
    .expect("the integration guide");
    let line = guide
        .lines()
        .find(|line| line.trim_start().starts_with("for f in ") && line.contains("curl"))
        .expect("the guide's copy loop");
    let listed: std::collections::BTreeSet<String> = line
        .trim_start()
        .trim_start_matches("for f in ")
        .split(';')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(|file| format!("/{file}"))
        .collect();

    // Act: every module reached from /react.js by a relative import.
    let mut pending = vec!["/react.js".to_owned()];
    let mut reached = std::collections::BTreeSet::new();
    while let Some(path) = pending.pop() {
        if !reached.insert(path.clone()) {
            continue;
        }
        let source = app.get(&path).await.text().await.expect("a module");
        pending.extend(
            imports(&source)
                .iter()
                .filter(|specifier| specifier.starts_with("./"))
                .filter_map(|specifier| resolve(&path, specifier)),
        );
    }

    // Assert
    let missing: Vec<_> = reached.difference(&listed).collect();
    assert!(
        missing.is_empty(),
        "the guide's list lacks {missing:?}: {line}"
    );
    for file in &listed {
        assert_eq!(
            app.get(file).await.status(),
            200,
            "{file} is listed, not served"
        );
    }
    for types in ["/client.d.ts", "/react.d.ts"] {
        assert!(listed.contains(types), "the list lacks {types}: {line}");
    }
}
