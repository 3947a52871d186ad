//! pyFAI PONI files (versions 1, 2, 2.1; version 3 read when parallax is off): read and write.
//!
//! Rules from pyFAI 2026.9 `io/ponifile.py` as summarised in `specs/xray-formats.md` (ii): lines
//! without `:` are skipped; `#` starts a comment, of which `# Calibrant:` and `# Image:` are kept;
//! every other line splits at its first `:`, the key is lower-cased, the later of two equal keys
//! wins. `poni_version` defaults to 1 and is raised to 2 by `Detector_config`, to 2.1 by an
//! `orientation` inside it. Lengths in metres, angles in radians.

use std::path::Path;

use caliper_core::error::{Position, ReadError};

use crate::detector::DetectorSpec;

/// A pyFAI geometry file.
#[derive(Debug, Clone, PartialEq)]
pub struct PoniFile {
    /// The format version read (1, 2, 2.1, 3).
    pub version: f64,
    /// The detector.
    pub detector: DetectorSpec,
    /// Sample to PONI distance along the detector normal, metres.
    pub dist: f64,
    /// PONI along axis 1 (rows) from the detector origin, metres.
    pub poni1: f64,
    /// PONI along axis 2 (columns), metres.
    pub poni2: f64,
    /// Rotation about axis 1, radians.
    pub rot1: f64,
    /// Rotation about axis 2, radians.
    pub rot2: f64,
    /// Rotation about axis 3 (the beam), radians.
    pub rot3: f64,
    /// Wavelength, metres (absent in some files).
    pub wavelength: Option<f64>,
    /// Kept comment lines (`# Calibrant: ...`, `# Image: ...`), without the `# `.
    pub extra: Vec<String>,
}

struct Entry {
    value: String,
    line: u64,
}

fn number(file: &Path, key: &str, e: &Entry) -> Result<f64, ReadError> {
    e.value.trim().parse::<f64>().map_err(|_| {
        ReadError::corrupt(
            file,
            Position::line(e.line),
            format!("PONI key `{key}`: expected a number, found `{}`", e.value),
        )
    })
}

impl PoniFile {
    /// Read a PONI file.
    pub fn read(path: &Path) -> Result<Self, ReadError> {
        let text = std::fs::read_to_string(path).map_err(|e| ReadError::io(path, &e))?;
        Self::parse(&text, path)
    }

    /// Parse PONI text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ReadError> {
        let mut entries: std::collections::HashMap<String, Entry> =
            std::collections::HashMap::new();
        let mut extra = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if let Some(comment) = line.strip_prefix('#') {
                let c = comment.trim();
                if c.starts_with("Calibrant:") || c.starts_with("Image:") {
                    extra.push(c.to_string());
                }
                continue;
            }
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            entries.insert(
                k.trim().to_lowercase(),
                Entry {
                    value: v.trim().to_string(),
                    line: i as u64 + 1,
                },
            );
        }
        fn lookup<'a>(
            entries: &'a std::collections::HashMap<String, Entry>,
            keys: &[&'static str],
        ) -> Option<(&'static str, &'a Entry)> {
            keys.iter().find_map(|k| entries.get(*k).map(|e| (*k, e)))
        }
        let get = |keys: &[&'static str]| lookup(&entries, keys);
        let required = |keys: &[&'static str]| -> Result<f64, ReadError> {
            match get(keys) {
                Some((k, e)) => number(path, k, e),
                None => Err(ReadError::unexpected(
                    path,
                    Position::default(),
                    format!("PONI file has no `{}` line (required)", keys[0]),
                )),
            }
        };
        let mut version = match get(&["poni_version"]) {
            Some((k, e)) => number(path, k, e)?,
            None => 1.0,
        };
        let detector = if let Some((_, cfg)) = get(&["detector_config"]) {
            version = version.max(2.0);
            let json: serde_json::Value = serde_json::from_str(&cfg.value).map_err(|e| {
                ReadError::corrupt(
                    path,
                    Position::line(cfg.line),
                    format!("Detector_config is not JSON: {e}"),
                )
            })?;
            let obj = json.as_object().ok_or_else(|| {
                ReadError::corrupt(
                    path,
                    Position::line(cfg.line),
                    "Detector_config must be a JSON object",
                )
            })?;
            if obj.contains_key("orientation") {
                version = version.max(2.1);
            }
            if get(&["parallax"]).is_some() {
                version = version.max(3.0);
            }
            let name = get(&["detector"])
                .map(|(_, e)| e.value.clone())
                .unwrap_or_else(|| "Detector".into());
            Self::detector_from_config(path, cfg.line, &name, obj)?
        } else {
            // Version 1: PixelSize1/2 (+ SplineFile), or a Detector name.
            if let Some((_, e)) = get(&["splinefile"])
                && !e.value.eq_ignore_ascii_case("none")
                && !e.value.is_empty()
            {
                return Err(ReadError::unexpected(
                    path,
                    Position::line(e.line),
                    format!(
                        "SplineFile `{}`: distortion splines are not supported",
                        e.value
                    ),
                ));
            }
            match get(&["detector"]) {
                Some((_, e)) if !e.value.eq_ignore_ascii_case("detector") => {
                    DetectorSpec::named(&e.value).ok_or_else(|| {
                        ReadError::unexpected(
                            path,
                            Position::line(e.line),
                            format!(
                                "unknown detector `{}`; known: {}, or `Detector` with PixelSize1/2",
                                e.value,
                                DetectorSpec::catalogue_names().join(", ")
                            ),
                        )
                    })?
                }
                _ => DetectorSpec::generic(
                    required(&["pixelsize1"])?,
                    required(&["pixelsize2"])?,
                    None,
                ),
            }
        };
        if let Some((_, e)) = get(&["parallax"])
            && e.value.eq_ignore_ascii_case("true")
        {
            return Err(ReadError::unexpected(
                path,
                Position::line(e.line),
                "parallax correction is not supported",
            ));
        }
        let wavelength = match get(&["wavelength"]) {
            Some((k, e)) if !e.value.eq_ignore_ascii_case("none") => Some(number(path, k, e)?),
            _ => None,
        };
        Ok(Self {
            version,
            detector,
            dist: required(&["distance", "dist"])?,
            poni1: required(&["poni1"])?,
            poni2: required(&["poni2"])?,
            rot1: required(&["rot1"])?,
            rot2: required(&["rot2"])?,
            rot3: required(&["rot3"])?,
            wavelength,
            extra,
        })
    }

    fn detector_from_config(
        path: &Path,
        line: u64,
        name: &str,
        obj: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<DetectorSpec, ReadError> {
        let bad = |m: String| ReadError::corrupt(path, Position::line(line), m);
        let num = |k: &str| -> Result<Option<f64>, ReadError> {
            match obj.get(k) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(v) => v
                    .as_f64()
                    .map(Some)
                    .ok_or_else(|| bad(format!("Detector_config `{k}` must be a number"))),
            }
        };
        let shape = match obj.get("max_shape") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::Array(a)) if a.len() == 2 => {
                let r = a[0]
                    .as_u64()
                    .ok_or_else(|| bad("max_shape must be two integers".into()))?;
                let c = a[1]
                    .as_u64()
                    .ok_or_else(|| bad("max_shape must be two integers".into()))?;
                Some((r as usize, c as usize))
            }
            Some(_) => return Err(bad("max_shape must be [rows, columns] or null".into())),
        };
        let orientation = match num("orientation")? {
            None => 3,
            Some(o) if (0.0..=4.0).contains(&o) && o.fract() == 0.0 => o as u8,
            Some(o) => return Err(bad(format!("orientation {o}: expected an integer 0..=4"))),
        };
        if let Some(s) = obj.get("splineFile").or_else(|| obj.get("splinefile"))
            && !s.is_null()
        {
            return Err(bad(
                "distortion splines (splineFile) are not supported".into()
            ));
        }
        let mut det = if name.eq_ignore_ascii_case("detector") {
            let p1 = num("pixel1")?.ok_or_else(|| bad("generic Detector needs pixel1".into()))?;
            let p2 = num("pixel2")?.ok_or_else(|| bad("generic Detector needs pixel2".into()))?;
            DetectorSpec::generic(p1, p2, shape)
        } else {
            let mut d = DetectorSpec::named(name).ok_or_else(|| {
                ReadError::unexpected(
                    path,
                    Position::line(line),
                    format!(
                        "unknown detector `{name}`; known: {}, or `Detector`",
                        DetectorSpec::catalogue_names().join(", ")
                    ),
                )
            })?;
            if let Some(p) = num("pixel1")? {
                d.pixel1 = p;
            }
            if let Some(p) = num("pixel2")? {
                d.pixel2 = p;
            }
            if shape.is_some() {
                d.max_shape = shape;
            }
            d
        };
        det.orientation = orientation;
        Ok(det)
    }

    /// The file as pyFAI 2026.9 writes it (`poni_version: 2.1`).
    pub fn to_text(&self, comment: &str) -> String {
        let d = &self.detector;
        let mut cfg = serde_json::Map::new();
        cfg.insert("pixel1".into(), serde_json::json!(d.pixel1));
        cfg.insert("pixel2".into(), serde_json::json!(d.pixel2));
        cfg.insert(
            "max_shape".into(),
            match d.max_shape {
                Some((r, c)) => serde_json::json!([r, c]),
                None => serde_json::Value::Null,
            },
        );
        cfg.insert("orientation".into(), serde_json::json!(d.orientation));
        let mut s = String::new();
        s.push_str("# Nota: C-Order, 1 refers to the Y axis, 2 to the X axis\n");
        if !comment.is_empty() {
            s.push_str(&format!("# {comment}\n"));
        }
        for e in &self.extra {
            s.push_str(&format!("# {e}\n"));
        }
        s.push_str("poni_version: 2.1\n");
        s.push_str(&format!("Detector: {}\n", d.name));
        // Keys in pyFAI's order: pixel1, pixel2, max_shape, orientation.
        let cfg_text = format!(
            "{{\"pixel1\": {}, \"pixel2\": {}, \"max_shape\": {}, \"orientation\": {}}}",
            cfg["pixel1"],
            cfg["pixel2"],
            cfg["max_shape"].to_string().replace(',', ", "),
            cfg["orientation"]
        );
        s.push_str(&format!("Detector_config: {cfg_text}\n"));
        s.push_str(&format!("Distance: {}\n", fmt(self.dist)));
        s.push_str(&format!("Poni1: {}\n", fmt(self.poni1)));
        s.push_str(&format!("Poni2: {}\n", fmt(self.poni2)));
        s.push_str(&format!("Rot1: {}\n", fmt(self.rot1)));
        s.push_str(&format!("Rot2: {}\n", fmt(self.rot2)));
        s.push_str(&format!("Rot3: {}\n", fmt(self.rot3)));
        if let Some(w) = self.wavelength {
            s.push_str(&format!("Wavelength: {}\n", fmt(w)));
        }
        s
    }

    /// Write the file.
    pub fn write(&self, path: &Path, comment: &str) -> std::io::Result<()> {
        std::fs::write(path, self.to_text(comment))
    }
}

/// Shortest text that reads back to the same f64 (Rust's `{:?}`-style round trip).
fn fmt(v: f64) -> String {
    format!("{v:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const V21: &str = "# Nota: C-Order, 1 refers to the Y axis, 2 to the X axis\n# Calibrant: CeO2\nponi_version: 2.1\nDetector: Pilatus1M\nDetector_config: {\"pixel1\": 0.000172, \"pixel2\": 0.000172, \"max_shape\": [1043, 981], \"orientation\": 3}\nDistance: 0.208651380603\nPoni1: 0.0872948482846\nPoni2: 0.0799601126306\nRot1: -0.0184422457059\nRot2: 0.00413760084465\nRot3: -2.77645988275e-08\nWavelength: 4.066e-11\n";

    #[test]
    fn reads_v21_and_round_trips() {
        let p = PoniFile::parse(V21, Path::new("a.poni")).unwrap();
        assert_eq!(p.version, 2.1);
        assert_eq!(p.detector.name, "Pilatus1M");
        assert_eq!(p.detector.max_shape, Some((1043, 981)));
        assert_eq!(p.dist, 0.208651380603);
        assert_eq!(p.rot3, -2.77645988275e-08);
        assert_eq!(p.wavelength, Some(4.066e-11));
        assert_eq!(p.extra, vec!["Calibrant: CeO2".to_string()]);
        let back = PoniFile::parse(&p.to_text("written by a test"), Path::new("b.poni")).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn missing_key_and_bad_value_name_file_and_line() {
        let no_rot2 = V21.replace("Rot2: 0.00413760084465\n", "");
        let e = PoniFile::parse(&no_rot2, Path::new("geom.poni")).unwrap_err();
        assert!(
            e.to_string().contains("geom.poni") && e.to_string().contains("rot2"),
            "{e}"
        );
        let bad = V21.replace("Poni1: 0.0872948482846", "Poni1: 0.08x");
        let e = PoniFile::parse(&bad, Path::new("geom.poni")).unwrap_err();
        assert_eq!(e.position.line, Some(7), "{e}");
        assert!(e.to_string().contains("geom.poni: line 7"), "{e}");
    }

    #[test]
    fn v1_uses_pixel_sizes_and_later_keys_win() {
        let t = "PixelSize1: 0.000172\nPixelSize2: 0.000172\nDistance: 0.1\nDistance: 0.2\nPoni1: 0.01\nPoni2: 0.02\nRot1: 0\nRot2: 0\nRot3: 0\nSplineFile: None\nWavelength: 1e-10\n";
        let p = PoniFile::parse(t, Path::new("v1.poni")).unwrap();
        assert_eq!(p.version, 1.0);
        assert_eq!(p.detector.name, "Detector");
        assert_eq!(p.dist, 0.2);
        assert!(p.detector.dummy.is_none());
    }
}
