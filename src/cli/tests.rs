//! The command line's definition, checked without running it.

use clap::{CommandFactory, Parser};

use super::Cli;

#[test]
fn the_command_definition_is_consistent() {
    Cli::command().debug_assert();
}

/// Every command and subcommand path (`["keys", "create"]`, …), depth first.
fn paths(cmd: &clap::Command, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let mut path = prefix.clone();
        path.push(sub.get_name().to_string());
        out.push(path.clone());
        paths(sub, path, out);
    }
}

#[test]
fn every_subcommand_answers_help_with_its_usage_and_description() {
    let root = Cli::command();
    let mut all = Vec::new();
    paths(&root, Vec::new(), &mut all);
    assert!(all.len() >= 14, "found {} commands: {all:?}", all.len());
    for path in all {
        let mut args = vec!["countersign".to_string()];
        args.extend(path.iter().cloned());
        args.push("--help".into());
        let err = Cli::try_parse_from(&args).expect_err("--help stops parsing");
        assert_eq!(err.kind(), clap::error::ErrorKind::DisplayHelp, "{path:?}");
        let text = err.render().to_string();
        assert!(text.contains(&format!("Usage: countersign {}", path.join(" "))), "{path:?}: {text}");
        // The description shown is the one written for this command.
        let mut cmd = &root;
        for name in &path {
            cmd = cmd.get_subcommands().find(|s| s.get_name() == name).expect("listed");
        }
        let about = cmd.get_about().map(|a| a.to_string()).unwrap_or_default();
        assert!(!about.is_empty(), "{path:?} has no description");
        assert!(text.contains(&about), "{path:?}: {text}");
    }
}
