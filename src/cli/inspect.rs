//! The `inspect` subcommand: what is staged under a root, and with `--database-url` how much
//! of it is loaded.

use crate::args::DbArgs;
use anyhow::Result;
use clap::Args;
use rasterstage::load;
use rasterstage::progress::human;
use rasterstage::store::Store;
use std::collections::BTreeMap;

/// `inspect` arguments.
#[derive(Args)]
pub struct InspectArgs {
    /// Staging root (folder, s3://bucket/prefix, gs://bucket/prefix or az://container/prefix).
    root: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Also show loaded tiles/total per dataset in this database.
    #[command(flatten)]
    db: DbArgs,
    /// Also write a preview of each dataset to <root>/<dataset>/preview.png (1024 pixels wide).
    #[arg(long)]
    preview: bool,
}

/// A schema and the loaded/total tiles per dataset in it.
type Loaded = (String, BTreeMap<String, (usize, usize)>);

/// The schema looked in and the loaded/total tiles per dataset, when a database is given.
fn loaded(db: &DbArgs, root: &Store) -> Result<Option<Loaded>> {
    if db.database_url.is_none() {
        return Ok(None);
    }
    let (t, conn) = db.resolve(None)?;
    let tiles = load::verify::loaded_tiles(root, &conn, &t.schema, &t.prefix)?;
    Ok(Some((t.schema, tiles)))
}

/// Runs `inspect`: a table (or JSON) of the staged datasets.
///
/// # Errors
/// A missing staging folder, unreadable manifests, database failures.
pub fn run(a: InspectArgs) -> Result<()> {
    let root = Store::open_existing(&a.root, &rasterstage::config::storage_options(None)?)?;
    let list = rasterstage::inspect::inspect(&root)?;
    let loaded = loaded(&a.db, &root)?;
    if a.preview {
        let opts = rasterstage::preview::PreviewOptions::default();
        let written = rasterstage::preview::write_beside(&root, &opts)?;
        let total = written.len();
        let mut failed = 0;
        for (name, r) in written {
            match r {
                Ok(url) => eprintln!("{name}: preview -> {url}"),
                Err(e) => {
                    failed += 1;
                    eprintln!("error: {name}: preview: {}", crate::args::one_line(&e.into()));
                }
            }
        }
        if failed > 0 {
            anyhow::bail!("{failed} of {total} previews failed");
        }
    }
    if a.json {
        let mut v = serde_json::to_value(&list)?;
        if let (Some((schema, loaded)), Some(items)) = (&loaded, v.as_array_mut()) {
            for d in items {
                let n = d["name"].as_str().and_then(|n| loaded.get(n)).map_or(0, |l| l.0);
                d["loaded_tiles"] = n.into();
                d["loaded_schema"] = schema.clone().into();
            }
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    if list.is_empty() {
        println!("no staged datasets under {}", root.url());
        return Ok(());
    }
    println!(
        "{:<20} {:<10} {:<8} {:<12} {:<8} {:>13} {:>12} {:>11} {:>14} {:>14}",
        "dataset", "status", "format", "method", "dtype", "shape", "resolution", "tiles", "rows", "value_sum"
    );
    // The schema is printed because "loaded 0/6" in the default schema (public) is what a
    // load into another schema looks like when --schema is left out.
    let loaded_col = |name: &str| match &loaded {
        Some((schema, l)) => format!(
            "  loaded {} (schema {schema})",
            l.get(name).map_or_else(|| "0/?".to_string(), |(n, t)| format!("{n}/{t}"))
        ),
        None => String::new(),
    };
    for d in list {
        println!(
            "{:<20} {:<10} {:<8} {:<12} {:<8} {:>13} {:>12} {:>11} {:>14} {:>14}{}",
            d.name,
            format!("{:?}", d.status).to_lowercase(),
            format!("{:?}", d.format).to_lowercase(),
            d.method,
            d.dtype,
            format!("{}x{}", d.shape[0], d.shape[1]),
            format!("{:.6}", d.resolution[0]),
            format!("{}/{}", d.tiles_done, d.tiles_total),
            d.rows,
            human(d.value_sum),
            loaded_col(&d.name)
        );
    }
    Ok(())
}
