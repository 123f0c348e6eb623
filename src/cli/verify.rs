//! The `verify` subcommand: staged and loaded data compared tile by tile.

use crate::args::StagingArgs;
use anyhow::{bail, Result};
use clap::Args;
use rasterstage::load;
use rasterstage::store::Store;

/// `verify` arguments.
#[derive(Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    staging: StagingArgs,
}

/// Runs `verify`; lists every differing tile.
///
/// # Errors
/// Any difference or failure.
pub fn run(a: VerifyArgs) -> Result<()> {
    let (st, db, conn) = a.staging.resolve("verify")?;
    let root = Store::open_with(&st.root, &st.storage)?;
    let results = load::verify::verify(&root, &st.datasets, &conn, &db.schema, &db.prefix)?;
    let total = results.len();
    let mut bad = 0;
    for (name, r) in results {
        match r {
            Ok(rep) => {
                for d in &rep.diffs {
                    println!(
                        "{name} {}: rows staged {} loaded {}, sum staged {} loaded {}",
                        d.tile, d.staged_rows, d.loaded_rows, d.staged_sum, d.loaded_sum
                    );
                }
                match rep.error() {
                    Some(e) if total == 1 => return Err(e.into()),
                    Some(e) => {
                        eprintln!("error: {e}");
                        bad += 1;
                    }
                    None => println!("{name}: {} tiles match {}", rep.tiles, rep.table),
                }
            }
            Err(e) if total == 1 => return Err(e.into()),
            Err(e) => {
                eprintln!("error: {name}: {e}");
                bad += 1;
            }
        }
    }
    if bad > 0 {
        bail!("{bad} of {total} datasets differ or failed");
    }
    Ok(())
}
