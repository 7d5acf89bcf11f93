//! The kompoz demo: a flaky service on loopback, 16 callers, and the stack a
//! user would write around it — `limited_named` ∘ `circuit_breaker` ∘
//! `with_timeout` ∘ `retry` — with a live timeline of what each layer did.
//!
//! ```text
//! cargo run -p kompoz-tokio --example demo
//! ```
//!
//! Colour is used when standard output is a terminal and `NO_COLOR` is unset.

// Shared with `tests/demo_story.rs`, which uses parts the demo does not.
#[allow(dead_code)]
mod scenario;
#[allow(dead_code)]
mod service;

use std::io::IsTerminal;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let settings = scenario::Settings::for_schedule(service::Schedule::standard());
    let mut out = std::io::stdout();
    scenario::run(settings, &mut out, color).await?;
    Ok(())
}
