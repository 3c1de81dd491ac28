use clap::Parser;

fn main() -> std::process::ExitCode {
    // `.env` first: it may set the log settings and the Sentry DSN read next.
    if let Err(e) = ferum::telemetry::load_dotenv() {
        eprintln!("error: {e:#}");
        return std::process::ExitCode::FAILURE;
    }
    let cli = ferum::cli::Cli::parse();
    // Sentry starts before the runtime so that every worker thread reports to it.
    let _telemetry = match ferum::telemetry::init() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(ferum::cli::run(cli));
    // Blocking work still running (a stuck request's file IO) must not hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
