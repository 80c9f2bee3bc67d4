//! A Model2Vec static embedder loaded from a directory: `tokenizer.json`
//! (a Hugging Face tokenizer), `model.safetensors` (one row per token id)
//! and, optionally, `config.json`.
//!
//! A text is embedded as the model2vec library does it: the text is cut to
//! `max_length` times the median token length in characters, the
//! tokenizer cuts it into at most `max_length` ids (no special tokens
//! added), the unknown token's id is dropped, each id picks a row (through the model's
//! `mappings` when it has them, scaled by its `weights` when it has them),
//! the rows are averaged, and the mean is normalized to unit length when
//! the config says so (every distilled model does). A text without tokens
//! embeds as the zero vector.
//!
//! Everything is read from local files: nothing is downloaded, ever. The
//! project distills its default model offline (`scripts/model2vec`) and
//! ships it in `models/`.

use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

use crate::error::{Error, Result};
use crate::text::embed::Embedder;

/// The longest input the model2vec library embeds whole, in tokens, when
/// the config does not say.
const DEFAULT_MAX_LENGTH: usize = 512;

/// A Model2Vec model (see the module documentation).
///
/// ```no_run
/// use engram::text::{Embedder, Model2Vec};
/// let m = Model2Vec::load("models/minilm-m2v-128").unwrap();
/// let v = m.embed("The dog bites the man.");
/// assert_eq!(v.len(), m.dim());
/// ```
pub struct Model2Vec {
    tokenizer: tokenizers::Tokenizer,
    /// Row-major, `rows` x `dim`, dequantized to f32.
    embeddings: Vec<f32>,
    dim: usize,
    /// Per-token-id scale, when the model has one.
    weights: Option<Vec<f32>>,
    /// Token id to row, when the model's rows are shared (vocabulary
    /// quantization).
    mapping: Option<Vec<usize>>,
    unk: Option<u32>,
    normalize: bool,
    max_length: usize,
    median_token_length: usize,
    id: String,
}

impl std::fmt::Debug for Model2Vec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model2Vec")
            .field("id", &self.id)
            .field("dim", &self.dim)
            .field("rows", &(self.embeddings.len() / self.dim.max(1)))
            .finish_non_exhaustive()
    }
}

fn model_error(path: &Path, reason: impl Into<String>) -> Error {
    Error::Model {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// A tensor's values as f32, whatever its stored type.
fn floats(path: &Path, name: &str, t: &safetensors::tensor::TensorView<'_>) -> Result<Vec<f32>> {
    let d = t.data();
    Ok(match t.dtype() {
        Dtype::F32 => d
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F64 => d
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
            .collect(),
        Dtype::F16 => d
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => d
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        // Quantized rows carry no scale: the mean is normalized, so one
        // scale for all rows changes nothing.
        Dtype::I8 => d.iter().map(|&b| b as i8 as f32).collect(),
        other => {
            return Err(model_error(
                path,
                format!("tensor {name:?} has type {other:?}, not a float or int8"),
            ))
        }
    })
}

/// A tensor's values as indices.
fn indices(path: &Path, name: &str, t: &safetensors::tensor::TensorView<'_>) -> Result<Vec<usize>> {
    let d = t.data();
    let v: Vec<i64> = match t.dtype() {
        Dtype::I64 => d
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
            .collect(),
        Dtype::I32 => d
            .chunks_exact(4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64)
            .collect(),
        Dtype::U32 => d
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64)
            .collect(),
        other => {
            return Err(model_error(
                path,
                format!("tensor {name:?} has type {other:?}, not integers"),
            ))
        }
    };
    v.into_iter()
        .map(|x| usize::try_from(x).map_err(|_| model_error(path, format!("tensor {name:?} holds {x}"))))
        .collect()
}

impl Model2Vec {
    /// Load the model in `dir`.
    ///
    /// Errors: [`Error::Io`] when a file cannot be read, [`Error::Model`]
    /// when the files are not a usable model (no `embeddings` tensor, a
    /// tokenizer whose ids reach past its rows, ...).
    pub fn load(dir: impl AsRef<Path>) -> Result<Model2Vec> {
        let dir = dir.as_ref();
        let tok_path = dir.join("tokenizer.json");
        let tok_bytes = read(&tok_path)?;
        let mut tokenizer = tokenizers::Tokenizer::from_bytes(&tok_bytes)
            .map_err(|e| model_error(&tok_path, format!("not a tokenizer: {e}")))?;
        let tok_json: serde_json::Value =
            serde_json::from_slice(&tok_bytes).map_err(|e| model_error(&tok_path, format!("not JSON: {e}")))?;
        let unk = tok_json
            .pointer("/model/unk_token")
            .and_then(|u| u.as_str())
            .and_then(|u| tokenizer.token_to_id(u));

        let cfg_path = dir.join("config.json");
        let config: serde_json::Value = if cfg_path.exists() {
            serde_json::from_slice(&read(&cfg_path)?).map_err(|e| model_error(&cfg_path, format!("not JSON: {e}")))?
        } else {
            serde_json::Value::Null
        };
        let normalize = config.get("normalize").and_then(|n| n.as_bool()).unwrap_or(true);
        let max_length = config
            .get("max_length")
            .and_then(|n| n.as_u64())
            .map_or(DEFAULT_MAX_LENGTH, |n| n as usize);

        let st_path = dir.join("model.safetensors");
        let st_bytes = read(&st_path)?;
        let st = SafeTensors::deserialize(&st_bytes)
            .map_err(|e| model_error(&st_path, format!("not a safetensors file: {e}")))?;
        let emb = st
            .tensor("embeddings")
            .map_err(|_| model_error(&st_path, "no tensor named \"embeddings\""))?;
        let &[rows, dim] = emb.shape() else {
            return Err(model_error(
                &st_path,
                format!("embeddings have shape {:?}, not rows x dim", emb.shape()),
            ));
        };
        if rows == 0 || dim == 0 {
            return Err(model_error(&st_path, "the embeddings are empty"));
        }
        let embeddings = floats(&st_path, "embeddings", &emb)?;
        if let Some(i) = embeddings.iter().position(|x| !x.is_finite()) {
            return Err(model_error(&st_path, format!("embedding value {i} is not finite")));
        }
        let vocab = tokenizer.get_vocab_size(true);
        let weights = match st.tensor("weights") {
            Ok(t) => Some(floats(&st_path, "weights", &t)?),
            Err(_) => None,
        };
        let mapping = match st.tensor("mappings") {
            Ok(t) => Some(indices(&st_path, "mappings", &t)?),
            Err(_) => None,
        };
        // Every id the tokenizer can give must find a row (and a weight).
        let reach = mapping.as_ref().map_or(vocab, |m| m.len());
        if mapping.is_none() && rows < vocab {
            return Err(model_error(
                &st_path,
                format!("{rows} rows for a vocabulary of {vocab} tokens"),
            ));
        }
        if let Some(m) = &mapping {
            if m.len() < vocab || m.iter().any(|&r| r >= rows) {
                return Err(model_error(&st_path, "the mappings do not send every token to a row"));
            }
        }
        if weights.as_ref().is_some_and(|w| w.len() < reach) {
            return Err(model_error(&st_path, "fewer weights than tokens"));
        }
        // As the library encodes: truncated to `max_length` ids, never
        // padded (whatever the file stores).
        tokenizer
            .with_truncation(Some(tokenizers::TruncationParams {
                max_length,
                ..Default::default()
            }))
            .map_err(|e| model_error(&tok_path, format!("truncation: {e}")))?;
        tokenizer.with_padding(None);
        let median_token_length = median_token_length(&tokenizer);
        let hash = xxhash_rust::xxh3::xxh3_64(&st_bytes) ^ xxhash_rust::xxh3::xxh3_64(&tok_bytes).rotate_left(1);
        Ok(Model2Vec {
            tokenizer,
            embeddings,
            dim,
            weights,
            mapping,
            unk,
            normalize,
            max_length,
            median_token_length,
            id: format!("model2vec-v1:{dim}:{hash:016x}"),
        })
    }

    /// The token ids `text` embeds from (see the module documentation).
    fn ids(&self, text: &str) -> Vec<u32> {
        let limit = self.max_length.saturating_mul(self.median_token_length);
        let cut = match text.char_indices().nth(limit) {
            Some((b, _)) => &text[..b],
            None => text,
        };
        // The tokenizers crate fails only on inputs its own configuration
        // rejects; such a text has nothing the model can embed.
        let Ok(enc) = self.tokenizer.encode(cut, false) else {
            return Vec::new();
        };
        // Truncated first, then the unknown token dropped, as the library does.
        enc.get_ids().iter().copied().filter(|&i| Some(i) != self.unk).collect()
    }
}

/// The median length in characters of the vocabulary's tokens (what the
/// model2vec library cuts long texts by).
fn median_token_length(tokenizer: &tokenizers::Tokenizer) -> usize {
    let mut lengths: Vec<usize> = tokenizer.get_vocab(true).keys().map(|t| t.chars().count()).collect();
    if lengths.is_empty() {
        return 1;
    }
    lengths.sort_unstable();
    let n = lengths.len();
    // numpy's median (the mean of the middle two of an even count), cut
    // to an integer.
    let median = if n % 2 == 1 {
        lengths[n / 2]
    } else {
        (lengths[n / 2 - 1] + lengths[n / 2]) / 2
    };
    median.max(1)
}

impl Embedder for Model2Vec {
    fn id(&self) -> String {
        self.id.clone()
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn embed_into(&self, text: &str, out: &mut [f32]) {
        assert_eq!(out.len(), self.dim, "embedding buffer of the wrong length");
        out.fill(0.0);
        let ids = self.ids(text);
        if ids.is_empty() {
            return;
        }
        for &id in &ids {
            let id = id as usize;
            let row = self.mapping.as_ref().map_or(id, |m| m[id]);
            let w = self.weights.as_ref().map_or(1.0, |w| w[id]);
            let r = &self.embeddings[row * self.dim..(row + 1) * self.dim];
            out.iter_mut().zip(r).for_each(|(o, x)| *o += w * x);
        }
        let n = ids.len() as f32;
        out.iter_mut().for_each(|o| *o /= n);
        if self.normalize {
            let norm = out.iter().map(|x| x * x).sum::<f32>().sqrt();
            if norm > f32::EPSILON {
                out.iter_mut().for_each(|x| *x /= norm);
            } else {
                out.fill(0.0);
            }
        }
    }
}

/// Where the project's default model lives: `ENGRAM_MODEL2VEC` when set,
/// else `models/minilm-m2v-128` beside the engine's sources (what the
/// tests, the demo and the benchmarks use; an installed extension sets its
/// own path).
pub fn default_model_dir() -> PathBuf {
    match std::env::var_os("ENGRAM_MODEL2VEC") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/minilm-m2v-128"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::tensor::TensorView;

    fn reference() -> serde_json::Value {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/model2vec-reference.json");
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    }

    fn floats_of(v: &serde_json::Value) -> Vec<f32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    }

    #[test]
    fn the_default_model_embeds_as_the_model2vec_library_does() {
        let m = Model2Vec::load(default_model_dir()).unwrap();
        let r = reference();
        assert_eq!(m.dim(), r["dim"].as_u64().unwrap() as usize);
        assert_eq!(
            m.median_token_length,
            r["median_token_length"].as_u64().unwrap() as usize
        );
        assert_eq!(m.max_length, r["max_length"].as_u64().unwrap() as usize);
        assert_eq!(m.unk, Some(r["unk_token_id"].as_u64().unwrap() as u32));
        let texts = r["texts"].as_array().unwrap();
        assert!(texts.len() >= 16);
        for (i, t) in texts.iter().enumerate() {
            let t = t.as_str().unwrap();
            let want_ids: Vec<u32> = r["token_ids"][i]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect();
            assert_eq!(m.ids(t), want_ids, "ids of text {i} {t:.40?}");
            let v = m.embed(t);
            // The library averages in f32 and rounds to f16 at the end:
            // to the f32 reference tightly, to its output within f16.
            for (want, tol) in [(&r["embeddings_f32"][i], 2e-6), (&r["embeddings"][i], 2e-3)] {
                let want = floats_of(want);
                let worst = v.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
                assert!(worst <= tol, "text {i} {t:.40?}: off by {worst}");
            }
        }
        assert_eq!(m.embed(""), vec![0.0; m.dim()], "no tokens: the zero vector");
    }

    /// A copy of the default model with its rows stored as `dtype`
    /// (`rows` of them) and an optional extra tensor.
    fn variant(
        dir: &Path,
        dtype: Dtype,
        rows: Option<usize>,
        extra: Option<(&str, Dtype, Vec<usize>, Vec<u8>)>,
    ) -> Model2Vec {
        let base = default_model_dir();
        std::fs::create_dir_all(dir).unwrap();
        for f in ["tokenizer.json", "config.json"] {
            std::fs::copy(base.join(f), dir.join(f)).unwrap();
        }
        let m = Model2Vec::load(&base).unwrap();
        let rows = rows.unwrap_or(m.embeddings.len() / m.dim);
        let values = &m.embeddings[..rows * m.dim];
        let max = values.iter().fold(0.0f32, |a, x| a.max(x.abs()));
        let data: Vec<u8> = match dtype {
            Dtype::F32 => values.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Dtype::I8 => values.iter().map(|x| (x / max * 127.0).round() as i8 as u8).collect(),
            _ => unreachable!(),
        };
        let mut tensors = vec![(
            "embeddings".to_string(),
            TensorView::new(dtype, vec![rows, m.dim], &data).unwrap(),
        )];
        if let Some((name, dt, shape, bytes)) = &extra {
            tensors.push((name.to_string(), TensorView::new(*dt, shape.clone(), bytes).unwrap()));
        }
        std::fs::write(
            dir.join("model.safetensors"),
            safetensors::serialize(tensors, None).unwrap(),
        )
        .unwrap();
        Model2Vec::load(dir).unwrap()
    }

    #[test]
    fn stored_types_weights_and_bad_files() {
        let tmp = tempfile::tempdir().unwrap();
        let f16 = Model2Vec::load(default_model_dir()).unwrap();
        let cos = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
        let text = "The king said to his queen: good night.";
        // f32 rows holding the same values embed the same.
        let f32m = variant(&tmp.path().join("f32"), Dtype::F32, None, None);
        let (a, b) = (f16.embed(text), f32m.embed(text));
        assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-6));
        // int8 rows: the same direction, to quantization.
        let i8m = variant(&tmp.path().join("i8"), Dtype::I8, None, None);
        assert!(cos(&a, &i8m.embed(text)) > 0.99, "{}", cos(&a, &i8m.embed(text)));
        assert_ne!(f16.id(), i8m.id(), "other rows, another id");
        // Per-token weights scale each row before the mean.
        let vocab = f16.embeddings.len() / f16.dim;
        let ids = f16.ids(text);
        let mut w = vec![1.0f32; vocab];
        w[ids[0] as usize] = 3.0;
        let wbytes: Vec<u8> = w.iter().flat_map(|x| x.to_le_bytes()).collect();
        let wm = variant(
            &tmp.path().join("w"),
            Dtype::F32,
            None,
            Some(("weights", Dtype::F32, vec![vocab], wbytes)),
        );
        let mut want = vec![0.0f32; f16.dim];
        for &i in &ids {
            let k = if i == ids[0] { 3.0 } else { 1.0 };
            let r = &f16.embeddings[i as usize * f16.dim..][..f16.dim];
            want.iter_mut().zip(r).for_each(|(o, x)| *o += k * x);
        }
        let n = want.iter().map(|x| x * x).sum::<f32>().sqrt();
        want.iter_mut().for_each(|x| *x /= n);
        let got = wm.embed(text);
        assert!(got.iter().zip(&want).all(|(x, y)| (x - y).abs() < 1e-5));
        // Refused: too few rows, a missing file, a file that is not a model.
        let few = tmp.path().join("few");
        let r = std::panic::catch_unwind(|| variant(&few, Dtype::F32, Some(100), None));
        assert!(r.is_err());
        assert!(matches!(Model2Vec::load(&few), Err(Error::Model { .. })));
        assert!(matches!(
            Model2Vec::load(tmp.path().join("none")),
            Err(Error::Io { .. })
        ));
        std::fs::write(few.join("model.safetensors"), b"not a model").unwrap();
        assert!(matches!(Model2Vec::load(&few), Err(Error::Model { .. })));
        std::fs::write(few.join("tokenizer.json"), b"{}").unwrap();
        assert!(matches!(Model2Vec::load(&few), Err(Error::Model { .. })));
    }
}
