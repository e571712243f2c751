//! `matchmaker serve | migrate | token`: reads settings, then hands over to the library.

use std::process::ExitCode;

use clap::Parser;
use matchmaker::{
    auth,
    config::{Cli, Command, Settings},
    startup::{self, Application, MIGRATOR},
    telemetry,
};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(&cli.overrides) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("matchmaker: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(settings.log_format);
    match run(cli.command.unwrap_or(Command::Serve), settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Token {
            user_id,
            username,
            ttl_secs,
        } => {
            println!(
                "{}",
                auth::mint_token(&settings.secret_key, &user_id, &username, ttl_secs)
            );
            Ok(())
        }
        Command::Migrate => {
            let db = startup::pool(&settings)?;
            MIGRATOR.run(&db).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Serve => {
            match matchmaker::fd_limit::raise_nofile_limit() {
                Ok((before, after)) => {
                    tracing::info!(
                        before,
                        after,
                        "open-file limit (soft) raised to the hard limit"
                    )
                }
                Err(e) => tracing::warn!(error = %e, "open-file limit left as it is"),
            }
            let db = startup::pool(&settings)?;
            if settings.migrate_on_start {
                MIGRATOR.run(&db).await?;
            }
            let listener = tokio::net::TcpListener::bind(settings.bind).await?;
            let grace = settings.shutdown_timeout;
            let app = Application::build(settings, db, listener)?;
            let shutdown = CancellationToken::new();
            tokio::spawn(on_signal(shutdown.clone()));
            let run = app.run_until(shutdown.clone());
            // Requests in flight get `shutdown_timeout_ms` to finish; then we exit regardless.
            let deadline = async {
                shutdown.cancelled().await;
                tokio::time::sleep(grace).await;
            };
            tokio::select! {
                result = run => result,
                _ = deadline => {
                    tracing::warn!("shutdown_timeout_ms passed with work in flight; exiting");
                    Ok(())
                }
            }
        }
    }
}

/// Cancels `shutdown` on Ctrl-C or SIGTERM.
async fn on_signal(shutdown: CancellationToken) {
    startup::shutdown_signal().await;
    tracing::info!("shutting down");
    shutdown.cancel();
}
