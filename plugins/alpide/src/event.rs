//! The event model shared by the readers and the analysis steps, and the mapping from
//! detector names in the data (`ALPIDE_3`, `plane_3`, `pALPIDEfs_3`) to plane indices.

/// One pixel hit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PixelHit {
    /// Plane index (position of the detector in the geometry, sorted by z).
    pub plane: u16,
    /// Column (local x index).
    pub col: u16,
    /// Row (local y index).
    pub row: u16,
    /// Charge (1 for binary ALPIDE data).
    pub charge: f32,
    /// Timestamp (ns; `m_timestamp` of JSONWriter, the last field of a TextWriter pixel; 0
    /// when the input has none).
    pub time: f64,
}

/// A cluster as Corryvreckan's TextWriter printed it (`Cluster <localX>, <localY>, (<gx>,<gy>,<gz>),
/// <charge>, <split>, <npix>, <colWidth>, <rowWidth>, <t>`), kept to compare with our clustering.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RefCluster {
    /// Plane index.
    pub plane: u16,
    /// Local position (mm).
    pub local: [f64; 2],
    /// Global position (mm).
    pub global: [f64; 3],
    /// Total charge.
    pub charge: f64,
    /// Split flag.
    pub split: bool,
    /// Number of pixels.
    pub size: u32,
    /// Width in columns.
    pub col_width: u32,
    /// Width in rows.
    pub row_width: u32,
}

/// One event: its number and its pixel hits (all planes).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Event {
    /// Event number: the index in a JSONWriter file (0-based), the `=== n ===` number in a
    /// TextWriter file.
    pub number: u64,
    /// Pixel hits of all planes, in file order.
    pub hits: Vec<PixelHit>,
    /// Clusters Corryvreckan wrote into a TextWriter file (usually empty).
    pub ref_clusters: Vec<RefCluster>,
}

impl Event {
    /// Bit set of the planes that have at least one hit.
    pub fn hit_planes(&self) -> u64 {
        self.hits
            .iter()
            .fold(0u64, |m, h| m | (1u64 << (h.plane.min(63))))
    }
}

/// Maps detector names of the data to plane indices and knows each plane's pixel matrix.
///
/// A name matches a plane when it equals the plane's name, or else when the numbers after the
/// last `_` agree (`pALPIDEfs_3`, `plane_3` and `ALPIDE_3` are all plane `ALPIDE_3`): the
/// Heidelberg notebook parses the plane number the same way (`int(id.split("_")[1])`).
#[derive(Debug, Clone, PartialEq)]
pub struct PlaneMap {
    names: Vec<String>,
    suffixes: Vec<Option<u64>>,
    dims: Vec<(u16, u16)>,
}

/// The number after the last `_` of a detector name.
pub fn name_suffix(name: &[u8]) -> Option<u64> {
    let pos = name.iter().rposition(|&b| b == b'_')?;
    let digits = &name[pos + 1..];
    if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0u64, |v, &d| v * 10 + u64::from(d - b'0')),
    )
}

impl PlaneMap {
    /// Planes with these names and (columns, rows), in plane order.
    pub fn new(planes: Vec<(String, u16, u16)>) -> Self {
        let suffixes = planes
            .iter()
            .map(|(n, _, _)| name_suffix(n.as_bytes()))
            .collect();
        let dims = planes.iter().map(|&(_, c, r)| (c, r)).collect();
        let names = planes.into_iter().map(|(n, _, _)| n).collect();
        Self {
            names,
            suffixes,
            dims,
        }
    }

    /// `n` ALPIDE planes `ALPIDE_0 .. ALPIDE_{n-1}` of 1024 x 512 pixels.
    pub fn alpide(n: usize) -> Self {
        Self::new((0..n).map(|i| (format!("ALPIDE_{i}"), 1024, 512)).collect())
    }

    /// Number of planes.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True without planes.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The plane names.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// (columns, rows) of a plane.
    pub fn dims(&self, plane: usize) -> (u16, u16) {
        self.dims[plane]
    }

    /// The plane a detector name refers to.
    pub fn resolve(&self, name: &[u8]) -> Option<u16> {
        if let Some(i) = self.names.iter().position(|n| n.as_bytes() == name) {
            return Some(i as u16);
        }
        let s = name_suffix(name)?;
        self.suffixes
            .iter()
            .position(|&x| x == Some(s))
            .map(|i| i as u16)
    }

    /// Words for an error message: the names known.
    pub fn describe(&self) -> String {
        self.names.join(", ")
    }
}

/// A small cache in front of [`PlaneMap::resolve`], so that readers compare a few bytes per hit
/// instead of searching names.
#[derive(Debug, Default, Clone)]
pub struct ResolveCache {
    seen: Vec<(Vec<u8>, Option<u16>)>,
}

impl ResolveCache {
    /// Resolve through the cache.
    pub fn resolve(&mut self, map: &PlaneMap, name: &[u8]) -> Option<u16> {
        for (n, p) in &self.seen {
            if n.as_slice() == name {
                return *p;
            }
        }
        let p = map.resolve(name);
        if self.seen.len() < 64 {
            self.seen.push((name.to_vec(), p));
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_by_exact_name_or_suffix() {
        let m = PlaneMap::alpide(7);
        assert_eq!(m.resolve(b"ALPIDE_3"), Some(3));
        assert_eq!(m.resolve(b"plane_3"), Some(3));
        assert_eq!(m.resolve(b"pALPIDEfs_6"), Some(6));
        assert_eq!(m.resolve(b"pALPIDEfs_7"), None);
        assert_eq!(m.resolve(b"telescope"), None);
        assert_eq!(m.resolve(b"x_"), None);
        let mut c = ResolveCache::default();
        assert_eq!(c.resolve(&m, b"plane_2"), Some(2));
        assert_eq!(c.resolve(&m, b"plane_2"), Some(2));
        assert_eq!(c.resolve(&m, b"foo"), None);
    }
}
