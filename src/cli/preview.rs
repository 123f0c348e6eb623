//! The `preview` subcommand: a staged dataset drawn as a PNG; all work is in
//! `rasterstage::preview`.

use crate::args::DbArgs;
use anyhow::{bail, Result};
use clap::Args;
use rasterstage::preview::{self, LoadTarget, OutFile, PreviewOptions};
use rasterstage::store::Store;

/// `preview` arguments.
#[derive(Args)]
pub struct PreviewArgs {
    /// The dataset folder: <root>/<dataset> (a folder, file:// or s3://bucket/prefix/dataset).
    #[arg(required_unless_present = "dataset", conflicts_with_all = ["from", "dataset"])]
    dataset_url: Option<String>,
    /// Staging root (folder or s3://bucket/prefix), with --dataset.
    #[arg(long, requires = "dataset")]
    from: Option<String>,
    /// Dataset name under --from.
    #[arg(long, requires = "from")]
    dataset: Option<String>,
    /// PNG file to write.
    #[arg(long, short = 'o')]
    out: String,
    /// Width in pixels; the height follows the grid's extent [default: 1024].
    #[arg(long)]
    width: Option<String>,
    /// Column of a merged dataset [default: its first].
    #[arg(long)]
    column: Option<String>,
    /// average or mode of the cells under a pixel [default: mode for integer data converted
    /// with mode, else average].
    #[arg(long, short = 'r')]
    method: Option<String>,
    /// Colour ramp: viridis, cividis, magma, inferno, plasma, turbo [default: viridis].
    #[arg(long)]
    ramp: Option<String>,
    /// linear (min to max) or percentile (2 % to 98 %) [default: linear].
    #[arg(long)]
    stretch: Option<String>,
    /// Overlay the tile grid: committed tiles outlined, uncommitted ones hatched, failed
    /// loads (with --database-url) red.
    #[arg(long)]
    tiles: bool,
    #[command(flatten)]
    db: DbArgs,
}

/// Runs `preview`: writes the PNG and prints one line.
///
/// # Errors
/// Bad flags, an unreadable dataset, a PNG that cannot be written.
pub fn run(a: PreviewArgs, quiet: bool) -> Result<()> {
    let (root, name) = match (&a.dataset_url, &a.from, &a.dataset) {
        (Some(u), _, _) => preview::split_dataset_url(u),
        (None, Some(f), Some(d)) => (f.clone(), d.clone()),
        _ => bail!("give the dataset as <root>/<dataset>, or --from ROOT --dataset NAME"),
    };
    let mut opts =
        PreviewOptions::from_flags(a.width.as_deref(), a.method.as_deref(), a.ramp.as_deref(), a.stretch.as_deref())?;
    (opts.column, opts.tiles, opts.quiet) = (a.column.clone(), a.tiles, quiet);
    if a.db.database_url.is_some() {
        if !a.tiles {
            bail!("--database-url marks failed loads on the tile overlay: add --tiles");
        }
        let (t, conn) = a.db.resolve(None)?;
        opts.loads = Some(LoadTarget { conn, schema: t.schema, table_prefix: t.prefix });
    }
    let out = OutFile::create(std::path::Path::new(&a.out))?;
    let storage = rasterstage::config::storage_options(None)?;
    let p = preview::render_dataset(&Store::open_existing(&root, &storage)?, &name, &opts)?;
    out.commit(&p.png)?;
    println!("{} -> {}", p.summary(), a.out);
    Ok(())
}
