//! The command line: render, check, batch, and bad input that must write nothing.

use crate::helpers::*;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn render_writes_the_pdf_and_prints_the_report_and_sha256() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out =
        countersign(&["render", "--intake", example_path(BAA).to_str().expect("path"), "--out", "baa.pdf"], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let pdf = std::fs::read(dir.path().join("baa.pdf")).expect("pdf written");
    let text = stdout(&out);
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&pdf));
    assert!(text.contains(&format!("sha256 {sha}")), "{text}");
    assert!(text.contains("✓ BAA-04"), "{text}");
    assert!(text.contains("version 1"), "{text}");
    assert_qpdf_ok(&pdf);
}

#[test]
fn the_same_intake_gives_the_same_bytes_in_separate_processes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = example_path(DUA);
    let p = p.to_str().expect("path");
    assert!(countersign(&["render", "--intake", p, "--out", "a.pdf"], dir.path()).status.success());
    assert!(countersign(&["render", "--intake", p, "--out", "b.pdf"], dir.path()).status.success());
    let a = std::fs::read(dir.path().join("a.pdf")).expect("a");
    let b = std::fs::read(dir.path().join("b.pdf")).expect("b");
    assert_eq!(a, b);
    // …and the same bytes as the library renders in this process.
    let lib = render(&intake(&example_text(DUA)), countersign::render::Options::default());
    assert_eq!(a, lib.pdf);
}

#[test]
fn check_json_reports_findings_in_one_shape_and_exits_zero_for_the_examples() {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in [BAA, DUA] {
        let out = countersign(
            &["check", "--intake", example_path(name).to_str().expect("p"), "--format", "json"],
            dir.path(),
        );
        assert!(out.status.success(), "{name}: {}{}", stdout(&out), stderr(&out));
        let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
        assert_eq!(v["valid"], true);
        assert!(v["elements"].as_array().expect("elements").len() >= 8);
        for f in v["findings"].as_array().expect("findings") {
            assert!(["error", "needs_approval", "advisory"].contains(&f["level"].as_str().expect("level")));
            assert!(f["message"].is_string());
        }
    }
    assert!(files_in(dir.path()).is_empty(), "check writes nothing");
}

/// Runs `render` on a bad intake and asserts: non-zero exit, the expected message, nothing written.
fn assert_rejected(intake_text: Option<&str>, expect: &[&str]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("intake.json");
    if let Some(t) = intake_text {
        std::fs::write(&path, t).expect("write intake");
    }
    let before = files_in(dir.path());
    let out = countersign(&["render", "--intake", "intake.json", "--out", "out.pdf"], dir.path());
    assert!(!out.status.success(), "must fail");
    let err = stderr(&out);
    for e in expect {
        assert!(err.contains(e), "stderr lacks {e:?}:\n{err}");
    }
    assert_eq!(files_in(dir.path()), before, "nothing may be written");
    let check = countersign(&["check", "--intake", "intake.json"], dir.path());
    assert!(!check.status.success());
}

#[test]
fn a_malformed_json_file_is_rejected_with_line_and_column() {
    assert_rejected(Some("{\n  \"kind\": \"baa\",\n  oops\n}"), &["line 3"]);
}

#[test]
fn a_missing_file_is_rejected_plainly() {
    assert_rejected(None, &["cannot read intake.json"]);
}

#[test]
fn an_unknown_field_is_rejected_with_the_nearest_known_name() {
    let t = example_text(BAA).replace("\"business_associate\": {", "\"business_asociate\": {");
    assert_rejected(Some(&t), &["/business_asociate", "business_associate"]);
}

#[test]
fn a_direct_identifier_in_a_dua_is_rejected_naming_the_identifier() {
    let t = example_text(DUA).replace("\"age at visit\"", "\"patient email address\"");
    assert_rejected(Some(&t), &["/data_elements/2", "email"]);
}

#[test]
fn a_breach_clock_over_sixty_days_is_rejected_citing_164_410() {
    let t = example_text(BAA).replace("\"breach_notice_days\": 10", "\"breach_notice_days\": 61");
    assert_rejected(Some(&t), &["/breach_notice_days", "164.410"]);
}

#[test]
fn batch_renders_every_line_and_reports_count_failures_and_rate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let baa = example_json(BAA).to_string();
    let dua = example_json(DUA).to_string();
    let bad = example_text(BAA).replace("\"breach_notice_days\": 10", "\"breach_notice_days\": 0").replace('\n', " ");
    let jsonl = [baa.clone(), dua, bad, baa].join("\n");
    std::fs::write(dir.path().join("batch.jsonl"), jsonl).expect("write");
    let out = countersign(&["render", "--batch", "batch.jsonl", "--out-dir", "out"], dir.path());
    assert!(!out.status.success(), "one line fails");
    let text = stdout(&out);
    assert!(text.contains("rendered 3 of 4 documents, 1 failed"), "{text}");
    assert!(text.contains("documents/s"), "{text}");
    assert!(stderr(&out).contains("line 3: /breach_notice_days"), "{}", stderr(&out));
    assert_eq!(files_in(&dir.path().join("out")), vec!["line-000001.pdf", "line-000002.pdf", "line-000004.pdf"]);
    let a = std::fs::read(dir.path().join("out/line-000001.pdf")).expect("pdf");
    let b = std::fs::read(dir.path().join("out/line-000004.pdf")).expect("pdf");
    assert_eq!(a, b, "batch output is deterministic too");
}

#[test]
fn help_describes_every_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = countersign(&["--help"], dir.path());
    let text = stdout(&out);
    for cmd in ["render", "check", "addenda"] {
        assert!(text.contains(cmd), "{text}");
    }
}

#[test]
fn user_invite_goes_through_the_running_server_and_user_list_reads_the_stopped_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf-8 path");
    let app = crate::app::spawn_app_at(dir.path(), countersign::clock::ManualClock::at(crate::app::T0));
    // `serve` writes where it listens; the in-process test server does not, so say it here.
    std::fs::write(dir.path().join("server.url"), format!("{}\n", app.base)).expect("server.url");
    let out = countersign(
        &[
            "user",
            "invite",
            "--email",
            "lee@lakeside.example",
            "--name",
            "Lee Legal",
            "--role",
            "legal",
            "--data",
            data,
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("/invite/"), "the one-time link is printed: {printed}");
    // The running server made it: its own API lists the person.
    let listed = app.get("/api/v1/users").json();
    assert!(listed["items"].to_string().contains("lee@lakeside.example"), "{listed}");
    app.stop();
    std::fs::remove_file(dir.path().join("server.url")).expect("server.url removed");
    // With the server stopped, the command opens the store itself.
    let out = countersign(&["user", "list", "--data", data], dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("lee@lakeside.example") && printed.contains("legal"), "{printed}");
}

/// On PostgreSQL the database is shared by design (several instances, no directory lock): the
/// operator commands work on it while an instance runs, and the instance serves what they
/// change at once. (On sled the same commands ask the server or refuse: see the archive and
/// signing tests.)
#[test]
fn on_postgresql_the_operator_commands_work_while_an_instance_runs_and_it_sees_their_changes_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = crate::pg::database();
    let url = db.clone();
    let app = crate::app::spawn_app_with(
        dir.path(),
        countersign::clock::ManualClock::at(crate::app::T0),
        "127.0.0.1:0",
        move |c| c.database_url = Some(url.into()),
    );
    let a = app.create(&example_text(BAA));
    let id = a["id"].as_str().expect("id").to_string();
    assert_eq!(app.post(&format!("/api/v1/agreements/{id}/send"), "").status, 200);
    let data = dir.path().to_str().expect("utf-8 path");
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--data", data, "--database-url", &db]);
        countersign(&all, dir.path())
    };

    // An API key made from the command line works on the running instance at once, and stops
    // working there the moment it is revoked.
    let made = run(&["apikey", "create", "--role", "legal", "--name", "Dana (legal)"]);
    assert!(made.status.success(), "{}", stderr(&made));
    let key = stdout(&made).trim().to_string();
    assert!(key.starts_with("csk_k"), "{key}");
    assert_eq!(app.req("GET", "/api/v1/agreements", Some(&key), "", b"").status, 200);
    let listed = run(&["apikey", "list"]);
    assert!(stdout(&listed).contains("Dana (legal)") && !stdout(&listed).contains(&key), "{}", stdout(&listed));
    let key_id = stderr(&made)
        .split_once("created key ")
        .and_then(|(_, r)| r.split_whitespace().next().map(str::to_string))
        .expect("the key's id");
    let revoked = run(&["apikey", "revoke", &key_id]);
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    assert_eq!(app.req("GET", "/api/v1/agreements", Some(&key), "", b"").status, 401);

    // The audit trail verifies on the shared database while the instance serves it.
    let verified = run(&["audit", "verify"]);
    assert!(verified.status.success(), "{}{}", stdout(&verified), stderr(&verified));
    assert!(stdout(&verified).contains("audit trail intact: 1 agreement chain(s)"), "{}", stdout(&verified));

    // The outbox lists the instance's signing link.
    let outbox = run(&["outbox", "list", "--json"]);
    assert!(outbox.status.success(), "{}", stderr(&outbox));
    let items: serde_json::Value = serde_json::from_slice(&outbox.stdout).expect("json");
    assert!(
        items.as_array().expect("items").iter().any(|m| m["agreement_id"] == id.as_str() && m["kind"] == "link"),
        "{items}"
    );

    // A person invited from the command line is in the instance's own list.
    let invited = run(&["user", "invite", "--email", "lee@lakeside.example", "--name", "Lee Legal", "--role", "legal"]);
    assert!(invited.status.success(), "{}", stderr(&invited));
    assert!(app.get("/api/v1/users").text().contains("lee@lakeside.example"));

    // A backup taken while serving is one snapshot: it restores into an empty database intact.
    let backup = run(&["backup", "--out", "snapshot.jsonl"]);
    assert!(backup.status.success(), "{}", stderr(&backup));
    let copy = tempfile::tempdir().expect("tempdir");
    let empty = crate::pg::database();
    let restored = countersign(
        &[
            "restore",
            "--from",
            dir.path().join("snapshot.jsonl").to_str().expect("path"),
            "--head-key",
            dir.path().join("audit-head.key").to_str().expect("path"),
            "--data",
            copy.path().to_str().expect("path"),
            "--database-url",
            &empty,
        ],
        dir.path(),
    );
    assert!(restored.status.success(), "{}{}", stdout(&restored), stderr(&restored));
    assert!(stdout(&restored).contains("audit trail intact: 1 agreement chain(s)"), "{}", stdout(&restored));
    // A second restore into the now filled database is refused, and changes nothing.
    let again = countersign(
        &[
            "restore",
            "--from",
            dir.path().join("snapshot.jsonl").to_str().expect("path"),
            "--data",
            copy.path().to_str().expect("path"),
            "--database-url",
            &empty,
        ],
        dir.path(),
    );
    assert_eq!(again.status.code(), Some(2), "{}", stdout(&again));
    assert!(stderr(&again).contains("not empty"), "{}", stderr(&again));
    app.stop();
}
