//! The integrator and operator tools of the `shipgate` binary, besides
//! `serve`: checking a configuration, signing a delivery by hand, and
//! sending a sample to a running gateway.

pub mod check_config;
pub mod send_sample;
pub mod sign;

use std::path::Path;
use std::process::ExitCode;

/// `shipgate check-config`: prints every problem with where it is, or
/// that all is well; fails when there is any problem.
pub fn check_config(file: Option<&Path>) -> ExitCode {
    let checked = check_config::check(file, std::env::vars().collect());
    for reading in &checked.readings {
        println!("{reading}");
    }
    let problems = checked.problems;
    if problems.is_empty() {
        println!("configuration, status maps and provider definitions are valid");
        return ExitCode::SUCCESS;
    }
    for problem in &problems {
        eprintln!("{problem}");
    }
    eprintln!("shipgate check-config: {} problem(s) found", problems.len());
    ExitCode::FAILURE
}
