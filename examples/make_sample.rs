//! Writes the demo's sample rasters (small, synthetic, but shaped like the real ones):
//! `cargo run --release --example make_sample -- <folder>`.
//!
//! - `plants.tif`: UInt16 species richness, 30", nodata 0 over the "sea".
//! - `vertebrates.tif`: Int32 richness, 1', top edge at 60.004 (off the 1' lattice, like the
//!   original terrestrial vertebrate raster), nodata -1.
//! - `landcover.tif`: Byte categories 1..=8, 30", nodata 255.
//! - `temperature.tif`: Float32, 30", NaN over the sea.

use gdal::raster::{Buffer, GdalType, RasterCreationOptions};
use gdal::spatial_ref::SpatialRef;
use gdal::DriverManager;
use std::path::Path;

const RES: f64 = 1.0 / 120.0;

fn land(x: f64, y: f64) -> bool {
    (x * 0.21).sin() + (y * 0.17).cos() + (x * 0.05 + y * 0.07).sin() > -0.3
}

fn write<T: GdalType + Copy>(
    path: &Path,
    (x0, y0, res): (f64, f64, f64),
    (w, h): (usize, usize),
    nodata: f64,
    f: impl Fn(f64, f64) -> T,
) {
    let driver = DriverManager::get_driver_by_name("GTiff").unwrap();
    let opts = RasterCreationOptions::from_iter(["TILED=YES", "COMPRESS=DEFLATE", "BLOCKXSIZE=256", "BLOCKYSIZE=256"]);
    let mut ds = driver.create_with_band_type_with_options::<T, _>(path, w, h, 1, &opts).unwrap();
    ds.set_geo_transform(&[x0, res, 0.0, y0, 0.0, -res]).unwrap();
    ds.set_spatial_ref(&SpatialRef::from_epsg(4326).unwrap()).unwrap();
    let mut band = ds.rasterband(1).unwrap();
    band.set_no_data_value(Some(nodata)).unwrap();
    // Row strips, so even a large sample never needs the whole raster in memory.
    for r0 in (0..h).step_by(256) {
        let rows = 256.min(h - r0);
        let mut v = Vec::with_capacity(rows * w);
        for r in r0..r0 + rows {
            let y = y0 - (r as f64 + 0.5) * res;
            for c in 0..w {
                v.push(f(x0 + (c as f64 + 0.5) * res, y));
            }
        }
        let mut buf = Buffer::new((w, rows), v);
        band.write((0, r0 as isize), (w, rows), &mut buf).unwrap();
    }
}

fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "demo-data".into());
    let dir = Path::new(&dir);
    std::fs::create_dir_all(dir).unwrap();
    // Europe-sized: 30 x 25 degrees.
    let (w, h) = (3600, 3000);
    write::<u16>(&dir.join("plants.tif"), (-10.0, 60.0, RES), (w, h), 0.0, |x, y| {
        if land(x, y) {
            (400.0 + 300.0 * (x * 0.3).sin() * (y * 0.2).cos() + (x * 7.0).sin() * 40.0).max(1.0) as u16
        } else {
            0
        }
    });
    write::<i32>(&dir.join("vertebrates.tif"), (-10.0, 60.004, 1.0 / 60.0), (1800, 1500), -1.0, |x, y| {
        if land(x, y) {
            (150.0 + 80.0 * (y * 0.4).sin() + 30.0 * (x * 0.9).cos()) as i32
        } else {
            -1
        }
    });
    write::<u8>(&dir.join("landcover.tif"), (-10.0, 60.0, RES), (w, h), 255.0, |x, y| {
        if land(x, y) {
            1 + (((x * 1.3).sin() + (y * 1.7).cos() + 2.0) * 1.75) as u8
        } else {
            255
        }
    });
    write::<f32>(&dir.join("temperature.tif"), (-10.0, 60.0, RES), (w, h), f64::NAN, |x, y| {
        if land(x, y) {
            (25.0 - (y - 35.0) * 0.8 + (x * 0.5).sin() * 2.0) as f32
        } else {
            f32::NAN
        }
    });
    println!("sample rasters written to {}", dir.display());
}
