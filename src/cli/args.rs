//! Arguments and reporting shared by several subcommands: the database target, the staging
//! target, `--shard K/N` / `--shards N`, one-line errors.

use anyhow::{bail, Result};
use clap::Args;
use rasterstage::config::{self, Config, DbTarget, StagingTarget};
use rasterstage::limits::MAX_SHARDS;
use rasterstage::load::pg::ConnSpec;
use rasterstage::load::LoadSummary;
use rasterstage::progress::{human, peak_rss_bytes};
use rasterstage::shard::Shard;

/// Where the tables are: connection, schema, prefix.
#[derive(Args, Clone, Default)]
pub struct DbArgs {
    /// PostgreSQL URL [default: $DATABASE_URL, then the config's database.url, then PG* variables].
    #[arg(long)]
    pub database_url: Option<String>,
    /// Schema of the tables [default: the config's database.schema, else public].
    #[arg(long)]
    pub schema: Option<String>,
    /// Prefix of each dataset's table name [default: the config's database.table_prefix].
    #[arg(long)]
    pub table_prefix: Option<String>,
}

impl DbArgs {
    /// The schema and prefix of these flags over the config's, and the connection.
    ///
    /// # Errors
    /// A connection URL that does not parse.
    pub fn resolve(&self, cfg: Option<&Config>) -> Result<(DbTarget, ConnSpec)> {
        let t = config::db_target(cfg, self.schema.as_deref(), self.table_prefix.as_deref());
        let conn = ConnSpec::resolve(self.database_url.as_deref(), t.config_url.as_deref())?;
        Ok((t, conn))
    }
}

/// What is staged where, and which of it: shared by `load` and `verify`.
#[derive(Args)]
pub struct StagingArgs {
    /// Config file: its output.uri is the staging root, its database section the target.
    #[arg(long, short = 'c')]
    pub config: Option<String>,
    /// Staging root (folder, file://, s3://, gs:// or az:// URL) [default: the config's output.uri].
    #[arg(long)]
    pub from: Option<String>,
    /// Only these datasets (repeatable or comma-separated) [default: every staged dataset].
    #[arg(long, value_delimiter = ',')]
    pub dataset: Vec<String>,
    #[command(flatten)]
    pub db: DbArgs,
}

impl StagingArgs {
    /// The staging root and datasets, the table target and the connection.
    ///
    /// # Errors
    /// A config that cannot be read, no staging root, a bad connection URL.
    pub fn resolve(&self, verb: &str) -> Result<(StagingTarget, DbTarget, ConnSpec)> {
        let cfg = Config::load_opt(self.config.as_deref())?;
        let st = config::staging_target(cfg.as_ref(), self.from.as_deref(), &self.dataset, verb)?;
        let (db, conn) = self.db.resolve(cfg.as_ref())?;
        Ok((st, db, conn))
    }
}

/// Which shard this process is.
#[derive(Args, Clone, Default)]
pub struct ShardArgs {
    /// Do only shard K of N (0-based, like JOB_COMPLETION_INDEX): a deterministic, disjoint,
    /// cell-balanced share of all tiles of all datasets.
    #[arg(long, value_name = "K/N", conflicts_with = "shards")]
    pub shard: Option<String>,
    /// Split into N shards and take K from JOB_COMPLETION_INDEX (Kubernetes Indexed Job),
    /// AWS_BATCH_JOB_ARRAY_INDEX (AWS Batch array job) or SLURM_ARRAY_TASK_ID (Slurm job
    /// array, sbatch --array=0-<N-1>; checked against the array's MIN/MAX/COUNT).
    #[arg(long, value_name = "N")]
    pub shards: Option<usize>,
}

impl ShardArgs {
    /// The shard, if any.
    ///
    /// # Errors
    /// A bad `--shard`, or `--shards` without an index variable.
    pub fn shard(&self) -> Result<Option<Shard>> {
        let k = Shard::from_args(self.shard.as_deref(), self.shards)?;
        if let Some(k) = k {
            self.check_count(k.count)?;
        }
        Ok(k)
    }

    /// Refuses more shards than [`MAX_SHARDS`]: the assignment keeps a counter per shard.
    ///
    /// # Errors
    /// Too many shards, naming the flag.
    pub fn check_count(&self, n: usize) -> Result<()> {
        if n > MAX_SHARDS {
            let what = if self.shards.is_some() { "--shards" } else { "--shard" };
            bail!("{what}: at most {MAX_SHARDS} shards, got {n}");
        }
        Ok(())
    }
}

/// The summary line's note on a shard's part: empty without `--shard`.
pub fn shard_status(shard: Option<Shard>, complete: bool) -> String {
    match (shard, complete) {
        (Some(k), true) => format!(" by shard {k}, dataset complete"),
        (Some(k), false) => format!(" by shard {k}, dataset not complete yet"),
        (None, _) => String::new(),
    }
}

/// The summary line of one loaded dataset; `rss` adds the process's peak memory.
pub fn load_line(s: &LoadSummary, rss: bool) -> String {
    let key = match (s.indexed, s.key_by_other, s.geom_indexed) {
        (true, _, true) => ", primary key and GiST index on geom built",
        (true, _, false) => ", primary key built",
        (false, true, _) => ", primary key already built by another run",
        (false, false, true) => ", GiST index on geom built",
        _ => "",
    };
    let rss = if rss { format!(", peak RSS {} MB", peak_rss_bytes() / (1 << 20)) } else { String::new() };
    format!(
        "{}: {} tiles ({} loaded now, {} already loaded), {} rows copied of {}, {:.1} s, {} rows/s{key}{rss} -> {}",
        s.name,
        s.tiles,
        s.loaded,
        s.skipped,
        s.rows,
        s.total_rows,
        s.seconds,
        human(s.rows as f64 / s.seconds.max(1e-3)),
        s.table
    )
}

/// The error and its causes on one line, without repeating a cause already in the message.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
    }
    msg.replace('\n', " ")
}
