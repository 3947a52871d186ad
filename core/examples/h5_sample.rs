//! Write a sample HDF5 file with every kind of content `caliper_core::h5` produces: nested
//! groups, a table with columns of every supported type and units, a large chunked and compressed
//! image, a small array and attributes. Used to check the files with h5py:
//!
//! ```sh
//! cargo run --release -p caliper-core --example h5_sample -- /tmp/sample.h5
//! python -c "import h5py; f = h5py.File('/tmp/sample.h5'); print(f['/dl1/table'][:3])"
//! ```

use caliper_core::h5::{AttrValue, ColumnData, H5Writer, Table};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "sample.h5".into());
    let n = 10_000usize;
    let mut t = Table::new();
    t.push_f64("f64", (0..n).map(|i| i as f64 * 0.25).collect());
    t.push_f32("f32", (0..n).map(|i| i as f32 * -0.5).collect());
    t.push_i64("i64", (0..n as i64).map(|i| i - 5000).collect());
    t.push_i32("i32", (0..n as i32).collect());
    t.push(
        "i16",
        ColumnData::I16((0..n).map(|i| (i % 30000) as i16 - 15000).collect()),
    );
    t.push_u64("u64", (0..n as u64).map(|i| i * 1_000_000_007).collect());
    t.push_u32("u32", (0..n as u32).collect());
    t.push_u16("u16", (0..n).map(|i| (i % 65535) as u16).collect());
    t.push_bool("flag", (0..n).map(|i| i % 2 == 0).collect());
    t.push_strings(
        "name",
        (0..n).map(|i| format!("tel_{:03}", i % 1000)).collect(),
    );
    t.push_array(
        "xyz",
        3,
        ColumnData::F64((0..3 * n).map(|i| i as f64 * 0.125).collect()),
    );
    t.push_array(
        "tels",
        4,
        ColumnData::Bool((0..4 * n).map(|i| i % 3 == 0).collect()),
    );
    t.set_unit("f64", "mm").set_description("f64", "a length");
    let mut w = H5Writer::new();
    w.write_table("/dl1/table", &t)?;
    let image: Vec<f32> = (0..1024 * 1024)
        .map(|i| ((i % 1024) as f32).sin() * 100.0 + (i / 1024) as f32)
        .collect();
    w.write_array("/images/big", &[1024, 1024], &image)?;
    w.write_array("/images/small", &[2, 3], &[1u16, 2, 3, 4, 5, 6])?;
    w.write_array("/stack", &[3, 4, 5, 6], &(0..360).collect::<Vec<i32>>())?;
    w.set_attr(
        "/",
        "creator",
        AttrValue::String("caliper h5_sample".into()),
    )?;
    w.set_attr("/images/big", "unit", AttrValue::String("ADU".into()))?;
    w.set_attr("/images", "pixel_size_um", AttrValue::F64(172.0))?;
    w.set_attr("/dl1", "n_rows", AttrValue::I64(n as i64))?;
    w.write(std::path::Path::new(&path))?;
    println!("wrote {path}");
    Ok(())
}
