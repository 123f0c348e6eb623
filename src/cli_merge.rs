//! The `merge` subcommand: arguments, the config's `merge:` section, reporting. Part of the
//! binary (next to main.rs); all work is in `rasterstage::merge` and `rasterstage::load`.

use crate::cli_load::DbArgs;
use anyhow::{bail, Context, Result};
use clap::Args;
use rasterstage::config::{DEFAULT_OUT, MAX_WINDOW, MIN_WINDOW};
use rasterstage::load::pg::ConnSpec;
use rasterstage::load::{self, LoadOptions};
use rasterstage::merge::{self, How, MergeJob, MergeOptions};
use rasterstage::name::DatasetName;
use rasterstage::progress::{human, peak_rss_bytes};
use rasterstage::stage::Format;
use rasterstage::store::Store;

/// Name of the merged dataset when neither --out, --name nor the config gives one.
const DEFAULT_NAME: &str = "merged";

/// `merge` arguments.
#[derive(Args)]
pub struct MergeArgs {
    /// Config file: merges its `merge:` section (inputs under output.uri).
    #[arg(long, short = 'c')]
    pub config: Option<String>,
    /// Staging root of the datasets to merge [default: the config's output.uri, else ./staging].
    #[arg(long)]
    pub from: Option<String>,
    /// Datasets to merge, in column order (comma-separated or repeated).
    #[arg(long, value_delimiter = ',')]
    pub datasets: Vec<String>,
    /// Folder of the merged dataset; its last segment is the dataset's name [default: <from>/<name>].
    #[arg(long, short = 'o')]
    pub out: Option<String>,
    /// Name of the merged dataset and of its table [default: --out's last segment, else merged].
    #[arg(long)]
    pub name: Option<String>,
    /// outer: cells where any dataset is valid; inner: cells where every dataset is valid [default: outer].
    #[arg(long)]
    pub how: Option<String>,
    /// Output format: parquet (tiles: row_idx, col_idx, x, y, one nullable column per dataset)
    /// or zarr (<name>.zarr: one array per dataset, fill value = its nodata, shared x/y) [default: parquet].
    #[arg(long, short = 'f')]
    pub format: Option<String>,
    /// Zarr format version with --format zarr: 3, or 2 for GDAL before 3.11 [default: the config's output.zarr_version, else 3].
    #[arg(long)]
    pub zarr_version: Option<u8>,
    /// Window (tile) size of the merged grid [default: the first dataset's].
    #[arg(long)]
    pub window: Option<usize>,
    /// Replace a merged dataset made from other inputs or settings.
    #[arg(long)]
    pub overwrite: bool,
    /// Worker threads (and connections with --to-postgres) [default: CPU cores].
    #[arg(long, short = 'j')]
    pub threads: Option<usize>,
    /// Also load the merged dataset into PostgreSQL (exactly once per tile, like `load`).
    #[arg(long)]
    pub to_postgres: bool,
    /// With --to-postgres: create a VIEW joining the already-loaded dataset tables instead of
    /// staging and loading a merged table.
    #[arg(long, requires = "to_postgres")]
    pub view: bool,
    /// With --to-postgres: drop and reload a merged table that already exists.
    #[arg(long, requires = "to_postgres")]
    pub replace: bool,
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub shard: crate::cli_shard::ShardArgs,
}

/// Splits a dataset folder URL into (staging root, last segment).
fn split_out(out: &str) -> (String, String) {
    let t = out.trim_end_matches('/');
    match t.rsplit_once('/') {
        Some((root, last)) if !root.is_empty() && !root.ends_with(':') && !root.ends_with(":/") => {
            (root.to_string(), last.to_string())
        }
        Some((root, last)) => (format!("{root}/"), last.to_string()),
        None => (".".to_string(), t.to_string()),
    }
}

/// Runs `merge`; prints one summary line (and the load's with --to-postgres).
///
/// # Errors
/// Any failure, as one line.
pub fn run_merge(a: MergeArgs, quiet: bool) -> Result<()> {
    let cfg = rasterstage::config::Config::load_applying_storage(a.config.as_deref())?;
    let mc = cfg.as_ref().and_then(|c| c.merge.clone());
    if cfg.is_some() && mc.is_none() && a.datasets.is_empty() {
        bail!(
            "{}: no merge: section (merge: {{name, datasets, how, format, uri}}) and no --datasets",
            a.config.as_deref().unwrap_or("")
        );
    }
    let mc = mc.unwrap_or_default();
    let from = a
        .from
        .clone()
        .or_else(|| cfg.as_ref().and_then(|c| c.output.uri.clone()))
        .unwrap_or_else(|| DEFAULT_OUT.to_string());
    let names: Vec<String> = if a.datasets.is_empty() { mc.datasets.clone() } else { a.datasets.clone() };
    let datasets = names.iter().map(|n| DatasetName::new(n)).collect::<Result<Vec<_>, _>>()?;
    let (out_root, out_name) = match &a.out {
        Some(o) => {
            let (root, last) = split_out(o);
            (root, Some(last))
        }
        None => (mc.uri.clone().unwrap_or_else(|| from.clone()), None),
    };
    let name_str = match (&a.name, &out_name) {
        (Some(n), Some(last)) if DatasetName::new(n)?.as_str() != DatasetName::new(last)?.as_str() => {
            bail!("--name {n} and --out (whose last segment names the dataset: {last}) disagree; give one of them")
        }
        (Some(n), _) => n.clone(),
        (None, Some(last)) => last.clone(),
        (None, None) => mc.name.clone().unwrap_or_else(|| DEFAULT_NAME.to_string()),
    };
    let name = DatasetName::new(&name_str).context("the merged dataset's name (--out's last segment or --name)")?;
    let dbc = cfg.as_ref().map(|c| c.database.clone()).unwrap_or_default();
    let schema = a.db.schema.clone().or(dbc.schema.clone()).unwrap_or_else(|| "public".to_string());
    let prefix = a.db.table_prefix.clone().or(dbc.table_prefix.clone()).unwrap_or_default();
    // Refused before anything is staged: `load` would refuse the table anyway.
    name.check_not_reserved(if a.to_postgres { &prefix } else { "" })?;
    let window = a.window.or(mc.window);
    if let Some(w) = window.filter(|w| !(MIN_WINDOW..=MAX_WINDOW).contains(w)) {
        let what = if a.window.is_some() { "--window" } else { "merge.window" };
        bail!(
            "{what}: must be between {MIN_WINDOW} and {MAX_WINDOW} cells (a window's {} cells at most are held in memory at once), got {w}",
            rasterstage::limits::MAX_WINDOW_CELLS
        );
    }
    let how_s = a.how.clone().or(mc.how.clone()).unwrap_or_else(|| "outer".into());
    let how = How::parse(&how_s).with_context(|| format!("--how: unknown {how_s:?}; use outer or inner"))?;
    let fmt_s = a.format.clone().or(mc.format.clone()).unwrap_or_else(|| "parquet".into());
    let format = Format::parse(&fmt_s).with_context(|| format!("--format: unknown {fmt_s:?}; use parquet or zarr"))?;
    let zarr_version =
        a.zarr_version.or(mc.zarr_version).or_else(|| cfg.as_ref().and_then(|c| c.output.zarr_version)).unwrap_or(3);
    // The threads are also the connections of --to-postgres.
    let max = rasterstage::limits::MAX_THREADS.min(rasterstage::limits::MAX_JOBS);
    let threads = rasterstage::config::worker_count(a.threads, "--threads", max)?;
    let job = MergeJob { from: from.clone(), datasets, out: out_root.clone(), name, how, format, zarr_version, window };
    tracing::debug!("merge job: {job:?}");

    if a.view {
        let conn = ConnSpec::resolve(a.db.database_url.as_deref(), dbc.url.as_deref())?;
        let root = Store::open_existing(&from)?;
        let view = merge::view::create_view(&conn, &schema, &prefix, &root, &job.datasets, &job.name, how)?;
        println!("{}: view {view} ({}) over {} loaded tables", job.name, how.name(), job.datasets.len());
        return Ok(());
    }

    let shard = a.shard.shard()?;
    if shard.is_some() && (a.overwrite || a.to_postgres) {
        bail!("--shard/--shards cannot go with --overwrite (every shard would delete the others' tiles) or --to-postgres (the merged dataset is complete only after the last shard): merge the shards, then `load --shard`");
    }
    // One dataset: a shard's tiles are its share of the merged grid's windows.
    let only = match shard {
        Some(k) => {
            let units = merge::tile_units(&job)?;
            Some(rasterstage::shard::mine(&units, k).into_iter().map(|(_, t)| t).collect())
        }
        None => None,
    };
    let s = merge::merge_tiles(&job, &MergeOptions { threads, overwrite: a.overwrite, quiet }, only.as_ref())?;
    println!(
        "{}: {} datasets merged ({}) onto {}x{}, {} tiles ({} written now{}), {} rows, sum {}, {:.1} s, peak RSS {} MB -> {}",
        s.name,
        s.inputs,
        how.name(),
        s.shape[0],
        s.shape[1],
        s.tiles,
        s.written,
        crate::cli_shard::shard_status(shard, s.complete),
        s.rows,
        s.value_sum,
        s.seconds,
        peak_rss_bytes() / (1 << 20),
        s.url
    );
    if a.to_postgres {
        let conn = ConnSpec::resolve(a.db.database_url.as_deref(), dbc.url.as_deref())?;
        let opts = LoadOptions {
            root: out_root,
            datasets: vec![job.name.to_string()],
            conn,
            jobs: threads,
            schema,
            table_prefix: prefix,
            no_index: false,
            geometry: cfg.as_ref().and_then(|c| c.load.geometry),
            replace: a.replace,
            coords: load::coords_view::Coords::Stored,
            quiet,
        };
        for (_, r) in load::load(&opts)? {
            let l = r?;
            println!(
                "{}: {} tiles ({} loaded now, {} already loaded), {} rows copied of {}, {:.1} s, {} rows/s{} -> {}",
                l.name,
                l.tiles,
                l.loaded,
                l.skipped,
                l.rows,
                l.total_rows,
                l.seconds,
                human(l.rows as f64 / l.seconds.max(1e-3)),
                crate::cli_load::key_note(&l),
                l.table
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::split_out;

    #[test]
    fn out_splits_into_root_and_name() {
        assert_eq!(split_out("./staging/merged"), ("./staging".into(), "merged".into()));
        assert_eq!(split_out("staging/merged/"), ("staging".into(), "merged".into()));
        assert_eq!(split_out("merged"), (".".into(), "merged".into()));
        assert_eq!(split_out("s3://bucket/merged"), ("s3://bucket".into(), "merged".into()));
        assert_eq!(split_out("/merged"), ("/".into(), "merged".into()));
    }
}
