//! The README's curl walk-throughs run as written, each against a fresh
//! broker (the real binary): every `$ command` of a `console` block in
//! order, its output compared line by line with what the README shows (`…`
//! in a line stands for anything, a line of `…` for any lines), and `$
//! cargo run --release -- FLAGS` starting a fresh broker with those flags.
//! A reader who follows them sees what the README says.

use tempfile::TempDir;

use crate::helpers::BrokerProcess;

/// One command of a walk-through and the lines the README shows for it.
#[derive(Debug)]
struct Step {
    command: String,
    shown: Vec<String>,
}

/// The `console` blocks' steps of the README section titled `title`.
fn steps(title: &str) -> Vec<Step> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let start = readme
        .find(&format!("\n## {title}\n"))
        .unwrap_or_else(|| panic!("no section {title}"));
    let section = &readme[start + 1..];
    let section = &section[..section[3..]
        .find("\n## ")
        .map_or(section.len(), |end| end + 3)];
    let mut steps: Vec<Step> = Vec::new();
    let (mut in_console, mut continued) = (false, false);
    for line in section.lines() {
        if line == "```console" {
            in_console = true;
        } else if line.starts_with("```") {
            in_console = false;
        } else if !in_console {
        } else if let Some(command) = line.strip_prefix("$ ") {
            steps.push(Step {
                command: command.to_owned(),
                shown: Vec::new(),
            });
            continued = command.ends_with('\\');
        } else if let Some(step) = steps.last_mut() {
            if continued {
                step.command.push('\n');
                step.command.push_str(line);
                continued = line.ends_with('\\');
            } else {
                step.shown.push(line.to_owned());
            }
        }
    }
    steps
}

/// Whether `line` is `shown`, where each `…` in `shown` stands for anything.
fn matches(shown: &str, line: &str) -> bool {
    let pieces: Vec<&str> = shown.split('…').collect();
    let (first, last) = (pieces[0], pieces[pieces.len() - 1]);
    if pieces.len() == 1 {
        return line == shown;
    }
    if !line.starts_with(first) || !line.ends_with(last) || line.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &line[first.len()..line.len() - last.len()];
    for piece in &pieces[1..pieces.len() - 1] {
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    true
}

/// Runs `step` against the broker at `address` (streams cut after two
/// seconds), off the test's runtime; its output lines, without
/// trailing blank ones.
async fn run(step: &Step, address: &str) -> Vec<String> {
    let command = step
        .command
        .replace("localhost:8080", address)
        .replace("curl ", "curl -s --max-time 10 ");
    // A stream never ends by itself: cut it once its catch-up has come (an
    // upload, also `-N`, ends when its body does).
    let command = if command.contains("--data-binary") {
        command
    } else {
        command.replace(" -N", " -N --max-time 2")
    };
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("bash")
            .arg("-c")
            .arg(&command)
            .output()
    })
    .await
    .expect("the command's thread")
    .expect("bash runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let mut lines: Vec<String> = text
        .lines()
        .map(|line| line.trim_end().to_owned())
        .collect();
    while lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    lines
}

/// Whether `got` is `shown`, a line of `…` standing for any lines.
fn lines_match(shown: &[String], got: &[String]) -> bool {
    match shown.split_first() {
        None => got.is_empty(),
        Some((first, rest)) if first == "…" => {
            (0..=got.len()).any(|skip| lines_match(rest, &got[skip..]))
        }
        Some((first, rest)) => got
            .split_first()
            .is_some_and(|(line, more)| matches(first, line) && lines_match(rest, more)),
    }
}

/// A fresh broker with `flags`, on its own store.
async fn fresh_broker(dir: &TempDir, run: usize, flags: &[&str]) -> BrokerProcess {
    let mut broker = BrokerProcess::spawn_with(
        &dir.path().join(format!("events-{run}.db")),
        dir.path().join(format!("broker-{run}.log")),
        flags,
        &[],
    );
    broker.wait_until_ready(&reqwest::Client::new()).await;
    broker
}

async fn walk(title: &str) {
    let dir = TempDir::new().expect("a scratch directory");
    let mut broker = fresh_broker(&dir, 0, &[]).await;
    let steps = steps(title);
    assert!(steps.len() >= 3, "{title}: {steps:?}");
    for (at, step) in steps.iter().enumerate() {
        if let Some(flags) = step.command.strip_prefix("cargo run --release -- ") {
            let flags: Vec<&str> = flags.split_whitespace().collect();
            broker = fresh_broker(&dir, at + 1, &flags).await;
            continue;
        }
        let mut shown = step.shown.clone();
        while shown.last().is_some_and(|line| line.trim().is_empty()) {
            shown.pop();
        }
        let address = broker.address.trim_start_matches("http://").to_owned();
        let got = run(step, &address).await;
        let same = lines_match(&shown, &got);
        assert!(
            same,
            "{title}: `{}`\nthe README shows:\n{}\nthe broker answered:\n{}",
            step.command,
            shown.join("\n"),
            got.join("\n")
        );
    }
}

#[test]
fn an_ellipsis_stands_for_anything_and_nothing_else_does() {
    assert!(matches("{\"id\":…,\"ok\":true}", "{\"id\":12,\"ok\":true}"));
    assert!(matches("a…b…c", "abc"));
    assert!(!matches("a…b…c", "acb"));
    assert!(!matches("{\"ids\":[3]}", "{\"ids\":[4]}"));
    assert!(!matches("x…", "y"));
    let lines = |text: &str| text.lines().map(str::to_owned).collect::<Vec<_>>();
    assert!(lines_match(&lines("a\n…\nd"), &lines("a\nb\nc\nd")));
    assert!(lines_match(&lines("a\n…\nd"), &lines("a\nd")));
    assert!(!lines_match(&lines("a\n…\nd"), &lines("a\nb")));
    assert!(!lines_match(&lines("a\nb"), &lines("a\nb\nc")));
}

#[actix_web::test]
async fn the_curl_walk_through_answers_as_the_readme_shows() {
    walk("A walk through with curl").await;
}

#[actix_web::test]
async fn the_tasks_walk_through_answers_as_the_readme_shows() {
    walk("Tasks: AI text and progress").await;
}
