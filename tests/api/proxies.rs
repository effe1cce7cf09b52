//! The nginx configuration of docs/proxies.md, run by a real nginx
//! (Debian's, which `.ci/test.sh` installs) in front of a broker: a
//! generation's upload reaches the viewers token by token, however long it
//! is, and streams pass through unbuffered. docs/deployment.md's
//! configuration must carry the same upload settings.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::{Value, json};
use tokio::time::Instant;

use crate::{
    generations::create,
    helpers::{EventStream, LONG, SHORT, TestApp, free_port, spawn_app},
    operator_assets::repo_path,
};

/// The first ```nginx block of a doc.
fn nginx_block(doc: &str) -> String {
    let text = std::fs::read_to_string(repo_path(doc)).expect("the doc");
    let start = text.find("```nginx\n").expect("an nginx block") + "```nginx\n".len();
    let length = text[start..].find("```").expect("the block's end");
    text[start..start + length].to_owned()
}

/// An nginx running the configuration of docs/proxies.md, with the broker
/// on `upstream` as its one server; stopped on drop.
struct Nginx {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Nginx {
    async fn start(upstream: u16) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        // Workers may run as another user: they write request bodies and
        // answers under the temporary paths.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )
        .expect("permissions");
        let port = free_port();
        let server = nginx_block("docs/proxies.md")
            .replace(
                "server 127.0.0.1:8080;",
                &format!("server 127.0.0.1:{upstream};"),
            )
            .replace(
                "listen 443 ssl http2;",
                &format!("listen 127.0.0.1:{port};"),
            );
        assert!(
            server.contains(&format!("listen 127.0.0.1:{port};")),
            "the doc's listen line"
        );
        let d = dir.path().display();
        let config = format!(
            "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n\
             proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n\
             scgi_temp_path {d}/scgi;\n{server}\n}}\n"
        );
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, config).expect("the configuration");
        let child = Command::new(nginx_binary())
            .args(["-p", &d.to_string(), "-c", &path.display().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start nginx ({e}). Run `bash .ci/test.sh`, which installs it (Debian package `nginx`)")
            });
        let nginx = Self { child, port, dir };
        let deadline = Instant::now() + LONG;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "nginx does not listen; its log:\n{}",
                nginx.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        nginx
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    /// A fast shutdown (SIGTERM): the master stops its workers, which a
    /// SIGKILL of the master would leave running, orphaned, on the port.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Debian installs nginx in /usr/sbin, which a user's PATH may lack.
fn nginx_binary() -> &'static str {
    if Path::new("/usr/sbin/nginx").exists() {
        "/usr/sbin/nginx"
    } else {
        "nginx"
    }
}

/// An upload through nginx whose body the test writes piece by piece.
struct ProxiedUpload {
    body: tokio::sync::mpsc::Sender<Result<bytes::Bytes, std::io::Error>>,
    answer: actix_rt::task::JoinHandle<reqwest::Response>,
}

impl ProxiedUpload {
    fn start(app: &TestApp, nginx: &Nginx, task_id: &str) -> Self {
        let (body, chunks) = tokio::sync::mpsc::channel(64);
        let request = app
            .api_client
            .post(nginx.url(&format!("/tasks/{task_id}/stream")))
            .header("Content-Type", "application/x-ndjson")
            .body(reqwest::Body::wrap_stream(
                tokio_stream::wrappers::ReceiverStream::new(chunks),
            ));
        let answer = actix_rt::spawn(async move { request.send().await.expect("upload sent") });
        Self { body, answer }
    }

    async fn send(&self, text: String) {
        self.body
            .send(Ok(bytes::Bytes::from(text)))
            .await
            .expect("the upload is open");
    }

    async fn finish(self) -> reqwest::Response {
        drop(self.body);
        tokio::time::timeout(LONG, self.answer)
            .await
            .expect("the upload is answered")
            .expect("the upload task")
    }
}

/// The text events' deltas `viewer` receives within `timeout`, joined.
async fn text_within(viewer: &mut EventStream, timeout: Duration, until: &str) -> String {
    let deadline = Instant::now() + timeout;
    let mut text = String::new();
    while !text.contains(until) {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(event) = viewer.next_event(left).await else {
            break;
        };
        if event.is("text") {
            let data: Value = serde_json::from_str(&event.data).expect("JSON data");
            text.push_str(data["delta"].as_str().expect("a delta"));
        }
    }
    text
}

#[actix_web::test]
async fn through_the_documented_nginx_an_upload_reaches_viewers_token_by_token_however_long() {
    // Arrange: the broker behind nginx as docs/proxies.md configures it.
    let app = spawn_app().await;
    let nginx = Nginx::start(app.port).await;
    create(&app, "through-nginx").await;
    let mut viewer = EventStream::connected(
        app.api_client
            .get(nginx.url("/tasks/through-nginx/events"))
            .send()
            .await
            .expect("a stream through nginx"),
        "nginx",
    )
    .await;

    // Act 1: the first token of an upload through nginx, the body still open.
    let upload = ProxiedUpload::start(&app, &nginx, "through-nginx");
    upload
        .send("{\"delta\": \"first token\"}\n".to_owned())
        .await;

    // Assert 1: the viewer (through nginx too) has it before the body ends:
    // nginx passed the body on as it came.
    let early = text_within(&mut viewer, SHORT, "first token").await;
    assert_eq!(
        early,
        "first token",
        "a token reaches the viewer while its upload is open; nginx's log:\n{}",
        nginx.log()
    );

    // Act 2: the rest of a long answer (1.5 MB, above nginx's default body
    // limit of 1 MiB), then its end.
    let line = format!("{{\"delta\": \"{}\"}}\n", "x".repeat(1000));
    for _ in 0..1500 {
        upload.send(line.clone()).await;
    }
    upload.send("{\"complete\": {}}\n".to_owned()).await;
    let answer = upload.finish().await;

    // Assert 2: accepted whole, and the viewer's text is exact.
    let status = answer.status().as_u16();
    let body: Value = answer.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 200, "{body}; nginx's log:\n{}", nginx.log());
    assert_eq!(body["deltas"], json!(1501), "{body}");
    let rest = text_within(&mut viewer, LONG, &"x".repeat(1_500_000)).await;
    assert_eq!(
        rest.len(),
        1_500_000,
        "the viewer's text after the first token"
    );
    assert!(rest.bytes().all(|b| b == b'x'));
    let end = viewer.next_event(SHORT).await;
    assert!(end.as_ref().is_some_and(|e| e.is("complete")), "{end:?}");
}

#[test]
fn the_deployment_guides_nginx_sets_up_uploads_as_the_proxies_guide_does() {
    let upload_location = |doc: &str| {
        let block = nginx_block(doc);
        let start = block
            .find("location ~ ^/tasks/[^/]+/stream$ {")
            .unwrap_or_else(|| panic!("{doc}: no location for POST /tasks/{{id}}/stream"));
        let length = block[start..].find('}').expect("the location's end");
        block[start..start + length].to_owned()
    };
    for doc in ["docs/proxies.md", "docs/deployment.md"] {
        let location = upload_location(doc);
        for setting in [
            "proxy_request_buffering off;",
            "client_max_body_size 0;",
            "proxy_read_timeout 1h;",
        ] {
            assert!(
                location.contains(setting),
                "{doc}'s upload location lacks {setting}"
            );
        }
    }
}
