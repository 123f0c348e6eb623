//! The `rasterstage` command line: parse, dispatch, report. All work (config resolution
//! included) is in the library; each subcommand has its own module here.

use anyhow::Result;
use clap::{Parser, Subcommand};

mod args;
mod convert;
mod finalize;
mod inspect;
mod load;
mod merge;
mod plan;
mod preview;
mod verify;

#[derive(Parser)]
#[command(
    name = "rasterstage",
    version,
    about = "Stage very large rasters for PostgreSQL: convert to Parquet tiles or Zarr window by window, then load exactly once"
)]
struct Cli {
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// No progress bars or info logs.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Convert rasters into staged tiles (Parquet) or a Zarr array, window by window.
    Convert(convert::ConvertArgs),
    /// Show what is staged under a root: datasets, grids, tiles done/total, rows, value sum.
    Inspect(inspect::InspectArgs),
    /// Load staged datasets into PostgreSQL by binary COPY, exactly once per tile (resumable).
    Load(load::LoadArgs),
    /// Compare staged and loaded data tile by tile (row count, value sum); non-zero exit on any difference.
    Verify(verify::VerifyArgs),
    /// Merge staged datasets on one lattice into one dataset with a column per dataset (optionally into PostgreSQL).
    Merge(merge::MergeArgs),
    /// Show how `--shards N` splits a config's tiles: tiles, cells and source cells per shard.
    Plan(plan::PlanArgs),
    /// Complete datasets whose tiles were all committed by shards (writes the final dataset.json).
    Finalize(finalize::FinalizeArgs),
    /// Draw a staged dataset as a PNG (gdal_translate -of PNG -outsize), optionally with its tiles.
    Preview(preview::PreviewArgs),
}

/// gdalwarp users type `-tr`, `-te`, `-t_srs`: accept them as the long flags they mean.
fn gdal_style_args() -> Vec<String> {
    std::env::args()
        .map(|a| match a.as_str() {
            "-tr" => "--tr".to_string(),
            "-te" => "--bounds".to_string(),
            "-t_srs" => "--target-crs".to_string(),
            _ => a,
        })
        .collect()
}

fn main() {
    let cli = Cli::try_parse_from(gdal_style_args()).unwrap_or_else(|e| bad_value(e).exit());
    init_logging(cli.verbose, cli.quiet);
    if let Err(e) = run(cli) {
        eprintln!("error: {}", args::one_line(&e));
        std::process::exit(1);
    }
}

/// A value outside a flag's choices (`--method bicubic`, `--zarr-version 7`) as one error
/// line naming the flag and the choices, like every other refused value; other clap errors
/// (help, version, usage) as clap prints them.
fn bad_value(e: clap::Error) -> clap::Error {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::InvalidValue {
        return e;
    }
    let (Some(ContextValue::String(arg)), Some(ContextValue::String(value)), Some(ContextValue::Strings(valid))) =
        (e.get(ContextKind::InvalidArg), e.get(ContextKind::InvalidValue), e.get(ContextKind::ValidValue))
    else {
        return e;
    };
    let flag = arg.split(' ').next().unwrap_or(arg);
    let choices = match valid.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => return e,
    };
    eprintln!("error: {flag} must be {choices}, got {value:?}");
    std::process::exit(2);
}

fn init_logging(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "warn",
        (_, 0) => "info",
        (_, 1) => "info,rasterstage=debug",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

fn run(cli: Cli) -> Result<()> {
    // A bad RASTERSTAGE_S3_* variable fails the run before it reads or writes anything,
    // whether or not the run ends up talking to an object store.
    rasterstage::config::storage_options(None)?;
    match cli.cmd {
        Cmd::Convert(a) => convert::run(a, cli.quiet),
        Cmd::Inspect(a) => inspect::run(a),
        Cmd::Load(a) => load::run(a, cli.quiet),
        Cmd::Verify(a) => verify::run(a),
        Cmd::Merge(a) => merge::run(a, cli.quiet),
        Cmd::Plan(a) => plan::run(a),
        Cmd::Finalize(a) => finalize::run(a),
        Cmd::Preview(a) => preview::run(a, cli.quiet),
    }
}
