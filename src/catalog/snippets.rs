//! Copy-paste commands for one item, built from the URL clients reach this server at
//! (`public_url`, else the request's Host): what the README and docs/mlis.md show,
//! filled in with the item's name.

use crate::hf::model::{RepoRef, RepoType};
use serde_json::{json, Value};

/// First path segments Airlock itself routes: a model whose namespace is one of them is
/// shadowed at the root, so its snippets use the `/hf` endpoint (see docs/mlis.md).
const TOP_LEVEL_PATHS: &[&str] = &[
    "api", "hf", "datasets", "spaces", "v2", "token", "simple", "legacy", "pypi", "healthz",
    "readyz", "metrics", "_airlock", "ui",
];

fn snippet(title: &str, text: String) -> Value {
    json!({ "title": title, "text": text })
}

/// `host[:port]` of the base URL.
fn authority(base: &str) -> &str {
    let rest = base.split_once("://").map_or(base, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

/// The Hub endpoint for `repo`: the root, or `/hf` when the root would shadow it.
pub fn hf_endpoint(base: &str, repo: &RepoRef) -> String {
    let namespace = repo.id.split('/').next().unwrap_or_default();
    if repo.kind == RepoType::Model && TOP_LEVEL_PATHS.contains(&namespace) {
        format!("{base}/hf")
    } else {
        base.to_string()
    }
}

pub fn hf(base: &str, repo: &RepoRef, revision: &str, needs_token: bool) -> Vec<Value> {
    let endpoint = hf_endpoint(base, repo);
    let mut args = format!("'{}'", repo.id);
    if repo.kind == RepoType::Dataset {
        args.push_str(", repo_type='dataset'");
    }
    if revision != "main" {
        args.push_str(&format!(", revision='{revision}'"));
    }
    let token = if needs_token {
        "HF_TOKEN=<an Airlock token> "
    } else {
        ""
    };
    let mut out = vec![snippet(
        "huggingface_hub",
        format!(
            "{token}HF_ENDPOINT={endpoint} python -c \"from huggingface_hub import snapshot_download; print(snapshot_download({args}))\""
        ),
    )];
    if repo.kind == RepoType::Model {
        let model = repo
            .id
            .rsplit('/')
            .next()
            .unwrap_or(&repo.id)
            .to_lowercase();
        out.push(snippet(
            "HPE MLIS (registry endpointUrl and hf:// model URL)",
            format!(
                "aioli registry create airlock-hf --type huggingface --endpoint-url {endpoint}/ --secret-key \"$AIRLOCK_TOKEN\"\n\
                 aioli model create {model} --registry airlock-hf --format vllm --url hf://{id}",
                id = repo.id
            ),
        ));
        out.push(snippet(
            "KServe",
            format!(
                "storageUri: hf://{}    # with HF_ENDPOINT={endpoint} on the storage initializer",
                repo.id
            ),
        ));
        out.extend(model_images(base, repo, revision));
    }
    out
}

/// The S3 API's commands for `repo` at `revision` (`org/name@<rev>/` when not `main`).
pub fn s3(endpoint: &str, repo: &RepoRef, revision: &str, needs_token: bool) -> Vec<Value> {
    let bucket = repo.kind.plural();
    let prefix = if revision == "main" {
        format!("{}/", repo.id)
    } else {
        format!("{}@{}/", repo.id, revision.replace('/', "%2F"))
    };
    let name = repo.id.rsplit('/').next().unwrap_or(&repo.id);
    let (credentials, no_sign, boto_config) = if needs_token {
        (
            "AWS_ACCESS_KEY_ID=<token name> AWS_SECRET_ACCESS_KEY=<token secret> ",
            "",
            "",
        )
    } else {
        (
            "",
            " --no-sign-request",
            ", config=Config(signature_version=UNSIGNED)",
        )
    };
    let boto_import = if needs_token {
        "import boto3"
    } else {
        "import boto3; from botocore import UNSIGNED; from botocore.config import Config"
    };
    let mut out = vec![
        snippet(
            "aws s3 (S3 API)",
            format!(
                "{credentials}aws --endpoint-url {endpoint}{no_sign} s3 cp --recursive s3://{bucket}/{prefix} ./{name}"
            ),
        ),
        snippet(
            "boto3 (S3 API)",
            format!(
                "{credentials}python -c '{boto_import}; s3 = boto3.client(\"s3\", endpoint_url=\"{endpoint}\", region_name=\"us-east-1\"{boto_config}); print([o[\"Key\"] for o in s3.list_objects_v2(Bucket=\"{bucket}\", Prefix=\"{prefix}\")[\"Contents\"]])'"
            ),
        ),
    ];
    if repo.kind == RepoType::Model {
        out.push(snippet(
            "KServe (s3://)",
            format!(
                "storageUri: s3://{bucket}/{prefix}    # S3 secret: s3-endpoint {}, the token's name and secret as the key pair",
                authority(endpoint)
            ),
        ));
    }
    out
}

/// The OCI model images of a model revision (see src/modelimage): the modelcar for
/// KServe's `oci://` and the ModelPack artifact. A revision with `/` is no OCI tag.
fn model_images(base: &str, repo: &RepoRef, revision: &str) -> Vec<Value> {
    use crate::modelimage::names::{HOST, MODELPACK_SUFFIX};
    if !crate::oci::names::is_valid_tag(&format!("{revision}{MODELPACK_SUFFIX}")) {
        return Vec::new();
    }
    let name = format!("{}/{HOST}/{}", authority(base), repo.id.to_lowercase());
    let (plain_http, tls) = if base.starts_with("http://") {
        (" --plain-http", " --src-tls-verify=false")
    } else {
        ("", "")
    };
    let local = repo
        .id
        .rsplit('/')
        .next()
        .unwrap_or(&repo.id)
        .to_lowercase();
    vec![
        snippet(
            "KServe modelcar (OCI image, files under /models)",
            format!(
                "storageUri: oci://{name}:{revision}{insecure}\nctr image pull{plain_http} {name}:{revision}",
                insecure = if tls.is_empty() {
                    ""
                } else {
                    "    # plain HTTP: KSERVE_OCI_INSECURE_REGISTRY=true on the storage initializer"
                }
            ),
        ),
        snippet(
            "ModelPack artifact (OCI, one layer per file)",
            format!(
                "skopeo copy{tls} docker://{name}:{revision}{MODELPACK_SUFFIX} oci:{local}:{revision}"
            ),
        ),
    ]
}

pub fn python(base: &str, index: &str, name: &str, version: &str, needs_token: bool) -> Vec<Value> {
    let mut index_url = if index == crate::pypi::DEFAULT_INDEX {
        format!("{base}/simple/")
    } else {
        format!("{base}/pypi/{index}/simple/")
    };
    if needs_token {
        // pip and uv send the password of the URL's userinfo as Basic auth.
        index_url = index_url.replacen("://", "://__token__:<an Airlock token>@", 1);
    }
    // pip ignores a plain-HTTP index on any host but localhost unless it is trusted.
    let trusted = if base.starts_with("http://") {
        let host = authority(base)
            .rsplit_once(':')
            .map_or(authority(base), |(h, _)| h);
        format!(" --trusted-host {host}")
    } else {
        String::new()
    };
    vec![
        snippet(
            "pip",
            format!("pip install --index-url {index_url}{trusted} {name}=={version}"),
        ),
        snippet(
            "uv",
            format!("uv pip install --index-url {index_url} {name}=={version}"),
        ),
    ]
}

pub fn image(base: &str, name: &str, tag: Option<&str>) -> Vec<Value> {
    let Some(tag) = tag else {
        return Vec::new();
    };
    let upstream = name.split('/').next().unwrap_or(name);
    let plain_http = if base.starts_with("http://") {
        " --plain-http"
    } else {
        ""
    };
    vec![
        snippet(
            "containerd (hosts.toml mirror)",
            format!(
                "# once per node: containerd sends {upstream} pulls to Airlock\n\
                 airlock oci hosts-toml --upstream {upstream} --airlock {base} --write /etc/containerd/certs.d\n\
                 ctr image pull --hosts-dir /etc/containerd/certs.d {name}:{tag}\n\
                 crictl pull {name}:{tag}"
            ),
        ),
        snippet(
            "ctr, straight from Airlock",
            format!("ctr image pull{plain_http} {}/{name}:{tag}", authority(base)),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shadowed_namespaces_use_the_hf_endpoint() {
        let model = |id: &str| RepoRef::new(RepoType::Model, id).unwrap();
        assert_eq!(
            hf_endpoint("http://a:8080", &model("org/m")),
            "http://a:8080"
        );
        assert_eq!(
            hf_endpoint("http://a:8080", &model("simple/m")),
            "http://a:8080/hf"
        );
        let dataset = RepoRef::new(RepoType::Dataset, "simple/d").unwrap();
        assert_eq!(hf_endpoint("http://a:8080", &dataset), "http://a:8080");
    }

    #[test]
    fn s3_snippets_name_the_bucket_and_the_pinned_prefix() {
        let model = RepoRef::new(RepoType::Model, "org/m").unwrap();
        let s = s3("http://a:9000", &model, "main", false);
        assert_eq!(
            s[0]["text"],
            "aws --endpoint-url http://a:9000 --no-sign-request s3 cp --recursive s3://models/org/m/ ./m"
        );
        assert!(s[2]["text"]
            .as_str()
            .unwrap()
            .starts_with("storageUri: s3://models/org/m/"));
        let dataset = RepoRef::new(RepoType::Dataset, "org/d").unwrap();
        let s = s3("https://s3.example", &dataset, "refs/pr/1", true);
        assert_eq!(s.len(), 2);
        assert!(s[0]["text"]
            .as_str()
            .unwrap()
            .contains("AWS_ACCESS_KEY_ID=<token name> AWS_SECRET_ACCESS_KEY=<token secret> aws --endpoint-url https://s3.example s3 cp --recursive s3://datasets/org/d@refs%2Fpr%2F1/ ./d"));
        assert_eq!(
            super::super::S3Endpoint::Port(9000).url("http://airlock:8080"),
            "http://airlock:9000"
        );
    }

    #[test]
    fn models_show_their_oci_images() {
        let repo = RepoRef::new(RepoType::Model, "Org/Tiny").unwrap();
        let s = hf("http://airlock:8080", &repo, "main", false);
        let texts: Vec<&str> = s.iter().map(|v| v["text"].as_str().unwrap()).collect();
        assert!(texts
            .iter()
            .any(|t| t.starts_with("storageUri: oci://airlock:8080/huggingface.co/org/tiny:main")));
        assert!(texts.contains(
            &"skopeo copy --src-tls-verify=false docker://airlock:8080/huggingface.co/org/tiny:main-modelpack oci:tiny:main"
        ));
        // A branch with `/` is no OCI tag: no image snippets.
        let s = hf("https://a.example", &repo, "feature/x", false);
        assert!(!s
            .iter()
            .any(|v| v["text"].as_str().unwrap().contains("oci")));
    }

    #[test]
    fn pip_trusts_plain_http_hosts() {
        let s = python("http://airlock:8080", "default", "demo", "1.0", false);
        assert_eq!(
            s[0]["text"],
            "pip install --index-url http://airlock:8080/simple/ --trusted-host airlock demo==1.0"
        );
        let s = python("https://airlock.example", "team", "demo", "1.0", true);
        assert_eq!(
            s[0]["text"],
            "pip install --index-url https://__token__:<an Airlock token>@airlock.example/pypi/team/simple/ demo==1.0"
        );
    }
}
