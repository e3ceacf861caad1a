//! The CNCF ModelPack artifact of one commit (modelpack/model-spec): one `.raw` layer per
//! file, so every layer digest is the file's own sha256 and nothing is copied. The JSON
//! is a pure function of the commit (fields in a fixed order, no timestamps): the same
//! revision has the same digest on every replica.

use crate::hf::model::FileEntry;
use serde::Serialize;
use std::collections::BTreeMap;

pub const ARTIFACT_TYPE: &str = "application/vnd.cncf.model.manifest.v1+json";
pub const CONFIG_TYPE: &str = "application/vnd.cncf.model.config.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const FILEPATH: &str = "org.cncf.model.filepath";

const WEIGHT: &str = "application/vnd.cncf.model.weight.v1.raw";
const WEIGHT_CONFIG: &str = "application/vnd.cncf.model.weight.config.v1.raw";
const DOC: &str = "application/vnd.cncf.model.doc.v1.raw";
const CODE: &str = "application/vnd.cncf.model.code.v1.raw";

const WEIGHT_EXTENSIONS: [&str; 14] = [
    "safetensors",
    "bin",
    "gguf",
    "pt",
    "pth",
    "ckpt",
    "h5",
    "onnx",
    "msgpack",
    "ot",
    "tflite",
    "pb",
    "npz",
    "npy",
];
const CODE_EXTENSIONS: [&str; 9] = ["py", "sh", "ipynb", "js", "ts", "rs", "go", "c", "cpp"];
const CONFIG_EXTENSIONS: [&str; 4] = ["json", "model", "tiktoken", "yaml"];
/// Tokenizer vocabularies are configuration of the weights, not prose.
const CONFIG_FILES: [&str; 3] = ["vocab.txt", "merges.txt", "added_tokens.txt"];

/// Which ModelPack layer type a repository file is.
pub fn media_type(path: &str) -> &'static str {
    let file = path.rsplit('/').next().unwrap_or(path);
    let ext = file
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    let ext = ext.as_str();
    if WEIGHT_EXTENSIONS.contains(&ext) {
        WEIGHT
    } else if CODE_EXTENSIONS.contains(&ext) {
        CODE
    } else if CONFIG_EXTENSIONS.contains(&ext) || CONFIG_FILES.contains(&file) {
        WEIGHT_CONFIG
    } else {
        DOC
    }
}

#[derive(Serialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: &'static str,
    pub digest: String,
    pub size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<&'static str, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest<'a> {
    pub schema_version: u32,
    pub media_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<&'static str>,
    pub config: &'a Descriptor,
    pub layers: &'a [Descriptor],
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<&'static str, String>,
}

#[derive(Serialize)]
struct Config<'a> {
    descriptor: ConfigDescriptor<'a>,
    config: ModelConfig,
    modelfs: ModelFs,
}

#[derive(Serialize)]
struct ConfigDescriptor<'a> {
    name: &'a str,
    revision: &'a str,
    #[serde(rename = "sourceURL")]
    source_url: String,
}

#[derive(Serialize)]
struct ModelConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<&'static str>,
}

#[derive(Serialize)]
struct ModelFs {
    #[serde(rename = "type")]
    kind: &'static str,
    diff_ids: Vec<String>,
}

/// What the weights are stored as, by the first weight file's extension.
fn format(files: &[FileEntry]) -> Option<&'static str> {
    files.iter().find_map(|f| match f.path.rsplit('.').next()? {
        "safetensors" => Some("safetensors"),
        "gguf" => Some("gguf"),
        "onnx" => Some("onnx"),
        "bin" | "pt" | "pth" => Some("pytorch"),
        _ => None,
    })
}

/// The layers, in the commit's path order.
pub fn layers(files: &[FileEntry]) -> Vec<Descriptor> {
    files
        .iter()
        .map(|f| Descriptor {
            media_type: media_type(&f.path),
            digest: format!("sha256:{}", f.sha256),
            size: f.size,
            platform: None,
            annotations: BTreeMap::from([(FILEPATH, f.path.clone())]),
        })
        .collect()
}

/// The config document; `diff_ids` are the raw layers' digests.
pub fn config(repo_id: &str, commit: &str, files: &[FileEntry]) -> Vec<u8> {
    let config = Config {
        descriptor: ConfigDescriptor {
            name: repo_id,
            revision: commit,
            source_url: format!("https://huggingface.co/{repo_id}"),
        },
        config: ModelConfig {
            format: format(files),
        },
        modelfs: ModelFs {
            kind: "layers",
            diff_ids: files
                .iter()
                .map(|f| format!("sha256:{}", f.sha256))
                .collect(),
        },
    };
    serde_json::to_vec(&config).expect("serializable")
}

pub fn manifest(config: &Descriptor, layers: &[Descriptor], commit: &str) -> Vec<u8> {
    let m = Manifest {
        schema_version: 2,
        media_type: OCI_MANIFEST,
        artifact_type: Some(ARTIFACT_TYPE),
        config,
        layers,
        annotations: BTreeMap::from([("org.opencontainers.image.revision", commit.to_string())]),
    };
    serde_json::to_vec(&m).expect("serializable")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_get_their_layer_types() {
        assert_eq!(media_type("model.safetensors"), WEIGHT);
        assert_eq!(media_type("sub/pytorch_model.bin"), WEIGHT);
        assert_eq!(media_type("config.json"), WEIGHT_CONFIG);
        assert_eq!(media_type("tokenizer.model"), WEIGHT_CONFIG);
        assert_eq!(media_type("vocab.txt"), WEIGHT_CONFIG);
        assert_eq!(media_type("README.md"), DOC);
        assert_eq!(media_type(".gitattributes"), DOC);
        assert_eq!(media_type("modeling_x.py"), CODE);
    }
}
