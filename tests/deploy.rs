//! The Kubernetes manifests in `deploy/` and the node files in `deploy/nodes/`, checked
//! without a cluster: every YAML document parses and names itself, kustomization.yaml
//! lists every manifest, the Deployment's flags, probes, ports, labels, security context,
//! resources and grace period agree with the real binary, the Dockerfile and the
//! ConfigMap (whose airlock.toml the real binary accepts), and the node files are exactly
//! what `airlock oci hosts-toml` prints today.

use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The arguments deploy/nodes/ was generated with (deploy/README.md shows the command).
const NODE_UPSTREAMS: &[&str] = &[
    "docker.io",
    "quay.io",
    "registry.k8s.io",
    "nvcr.io",
    "ghcr.io",
    "gcr.io",
];
const NODE_AIRLOCK_URL: &str = "http://airlock.example.internal:30080";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn deploy() -> PathBuf {
    root().join("deploy")
}

/// `airlock` with no AIRLOCK_* variables from the caller's environment.
fn airlock() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_airlock"));
    for (key, _) in std::env::vars() {
        if key.starts_with("AIRLOCK_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            out.push(path);
        }
    }
}

/// The documents of one YAML file (comment-only documents dropped).
fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut docs = Vec::new();
    for doc in serde_norway::Deserializer::from_str(&text) {
        let value = Value::deserialize(doc)
            .unwrap_or_else(|e| panic!("{}: not valid YAML: {e}", path.display()));
        if !value.is_null() {
            docs.push(value);
        }
    }
    docs
}

/// Every document under deploy/, with the file it is in.
fn all_documents() -> Vec<(PathBuf, Value)> {
    let mut files = Vec::new();
    yaml_files(&deploy(), &mut files);
    files.sort();
    assert!(
        files.len() >= 6,
        "deploy/ holds too few manifests: {files:?}"
    );
    let mut out = Vec::new();
    for file in files {
        let docs = documents(&file);
        assert!(!docs.is_empty(), "{}: no YAML document", file.display());
        out.extend(docs.into_iter().map(|d| (file.clone(), d)));
    }
    out
}

fn of_kind(kind: &str) -> Vec<(PathBuf, Value)> {
    all_documents()
        .into_iter()
        .filter(|(_, d)| d["kind"] == kind)
        .collect()
}

fn one(kind: &str) -> Value {
    let mut docs = of_kind(kind);
    assert_eq!(docs.len(), 1, "expected exactly one {kind} in deploy/");
    docs.remove(0).1
}

fn str_of<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what}: expected a string, found {v}"))
}

fn labels(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), str_of(v, k).to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// `selector` selects pods labelled `pod`: not empty, and every pair is on the pod.
fn assert_selects(selector: &Value, pod: &BTreeMap<String, String>, what: &str) {
    let selector = labels(selector);
    assert!(!selector.is_empty(), "{what}: empty selector");
    for (k, v) in &selector {
        assert_eq!(
            pod.get(k),
            Some(v),
            "{what}: selector {k}={v} does not match the pod labels {pod:?}"
        );
    }
}

/// The ConfigMap's airlock.toml.
fn config_text() -> String {
    let cm = one("ConfigMap");
    str_of(&cm["data"]["airlock.toml"], "ConfigMap data.airlock.toml").to_string()
}

fn config() -> toml::Table {
    config_text().parse().expect("airlock.toml is TOML")
}

fn pod_spec() -> Value {
    one("Deployment")["spec"]["template"]["spec"].clone()
}

fn container() -> Value {
    let containers = pod_spec()["containers"].as_array().unwrap().clone();
    assert_eq!(containers.len(), 1, "one container in the pod");
    containers[0].clone()
}

fn container_port() -> (String, u64) {
    let ports = container()["ports"].as_array().unwrap().clone();
    assert_eq!(ports.len(), 1);
    (
        str_of(&ports[0]["name"], "port name").to_string(),
        ports[0]["containerPort"].as_u64().unwrap(),
    )
}

/// A port reference (number or name) resolves to the container's port.
fn assert_is_container_port(port: &Value, what: &str) {
    let (name, number) = container_port();
    let ok = port.as_u64() == Some(number) || port.as_str() == Some(name.as_str());
    assert!(
        ok,
        "{what}: port {port} is not the container port {name}/{number}"
    );
}

/// Memory quantities as Kubernetes writes them (Mi, Gi, plain bytes), in MiB.
fn mebibytes(q: &str) -> f64 {
    let (n, unit) = q.split_at(q.find(|c: char| c.is_alphabetic()).unwrap_or(q.len()));
    let n: f64 = n.parse().unwrap_or_else(|_| panic!("quantity {q}"));
    match unit {
        "Ki" => n / 1024.0,
        "Mi" => n,
        "Gi" => n * 1024.0,
        "M" => n * 1e6 / 1048576.0,
        "G" => n * 1e9 / 1048576.0,
        "" => n / 1048576.0,
        _ => panic!("unexpected memory unit in {q}"),
    }
}

/// CPU quantities (`500m`, `2`, `1.5`), in CPUs.
fn cpus(q: &str) -> f64 {
    match q.strip_suffix('m') {
        Some(milli) => milli.parse::<f64>().unwrap() / 1000.0,
        None => q.parse().unwrap_or_else(|_| panic!("cpu quantity {q}")),
    }
}

#[test]
fn every_manifest_names_itself() {
    for (file, doc) in all_documents() {
        let file = file.display();
        let kind = str_of(&doc["kind"], &format!("{file}: kind"));
        assert!(
            !str_of(&doc["apiVersion"], &format!("{file}: apiVersion")).is_empty(),
            "{file}"
        );
        if kind == "Kustomization" {
            continue;
        }
        let name = str_of(&doc["metadata"]["name"], &format!("{file}: metadata.name"));
        assert!(!name.is_empty(), "{file}: empty metadata.name");
        if kind != "Namespace" {
            assert_eq!(
                doc["metadata"]["namespace"], "airlock",
                "{file}: {kind} {name} outside the airlock namespace"
            );
        }
    }
}

#[test]
fn kustomization_lists_every_manifest() {
    let kustomization = documents(&deploy().join("kustomization.yaml")).remove(0);
    assert_eq!(kustomization["kind"], "Kustomization");
    let listed: BTreeSet<String> = kustomization["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| str_of(r, "resource").to_string())
        .collect();
    let mut top_level = BTreeSet::new();
    for entry in std::fs::read_dir(deploy()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if path.is_file() && name.ends_with(".yaml") && name != "kustomization.yaml" {
            top_level.insert(name);
        }
    }
    assert_eq!(
        listed, top_level,
        "kustomization.yaml resources must be exactly deploy/*.yaml"
    );
    // The optional files it mentions (commented out) exist, so the hints stay true.
    let text = std::fs::read_to_string(deploy().join("kustomization.yaml")).unwrap();
    let mut hinted = 0;
    for line in text.lines() {
        if let Some(path) = line.trim().strip_prefix("# - ") {
            assert!(deploy().join(path).is_file(), "kustomization.yaml: {path}");
            hinted += 1;
        }
    }
    let mut optional = Vec::new();
    yaml_files(&deploy().join("optional"), &mut optional);
    assert_eq!(
        hinted,
        optional.len(),
        "every deploy/optional/ file is named (commented) in kustomization.yaml"
    );
}

#[test]
fn deployment_flags_exist_in_the_real_binary() {
    let help = airlock().args(["serve", "--help"]).output().unwrap();
    assert!(help.status.success());
    let help = String::from_utf8(help.stdout).unwrap();
    let known: BTreeSet<&str> = help
        .split(|c: char| c.is_whitespace() || c == ',' || c == '=' || c == '<')
        .filter(|w| w.starts_with("--"))
        .collect();
    assert!(known.contains("--listen"), "{help}");
    // Global flags (--config, --store, ...) are shown by `serve --help` too.
    assert!(known.contains("--config"), "{help}");

    let args: Vec<String> = container()["args"]
        .as_array()
        .expect("container args")
        .iter()
        .map(|a| str_of(a, "arg").to_string())
        .collect();
    assert_eq!(args.first().map(String::as_str), Some("serve"));
    let mut flags = 0;
    for arg in &args {
        if arg.starts_with("--") {
            let flag = arg.split('=').next().unwrap();
            assert!(
                known.contains(flag),
                "{flag}: not a flag of `airlock serve` ({known:?})"
            );
            flags += 1;
        }
    }
    assert!(flags >= 2);

    let value_of = |flag: &str| -> String {
        let i = args.iter().position(|a| a == flag).unwrap_or_else(|| {
            panic!("{flag} missing from the container args");
        });
        args[i + 1].clone()
    };
    // --listen is on the container port, on every interface.
    let listen = value_of("--listen");
    let (_, port) = container_port();
    assert_eq!(listen, format!("0.0.0.0:{port}"));
    // --config is where the ConfigMap's airlock.toml is mounted.
    let config_path = value_of("--config");
    let mount = container()["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == config_path.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("nothing mounted at {config_path}"));
    assert_eq!(mount["subPath"], "airlock.toml");
    let volume = pod_spec()["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .cloned()
        .unwrap();
    assert_eq!(
        volume["configMap"]["name"],
        one("ConfigMap")["metadata"]["name"]
    );
}

#[test]
fn probes_hit_readyz_and_healthz_on_the_container_port() {
    let c = container();
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe}");
        assert_is_container_port(&get["port"], probe);
    }
}

#[test]
fn services_and_pdb_select_the_pods() {
    let deployment = one("Deployment");
    let pod = labels(&deployment["spec"]["template"]["metadata"]["labels"]);
    assert_selects(
        &deployment["spec"]["selector"]["matchLabels"],
        &pod,
        "Deployment",
    );

    let services = of_kind("Service");
    assert!(services
        .iter()
        .any(|(_, s)| s["spec"]["type"] == "ClusterIP"));
    for (file, service) in services {
        let what = format!("{} Service", file.display());
        assert_selects(&service["spec"]["selector"], &pod, &what);
        for port in service["spec"]["ports"].as_array().unwrap() {
            assert_is_container_port(&port["targetPort"], &what);
        }
    }

    let pdb = one("PodDisruptionBudget");
    assert_selects(&pdb["spec"]["selector"]["matchLabels"], &pod, "PDB");
    let replicas = deployment["spec"]["replicas"].as_u64().unwrap();
    let min_available = pdb["spec"]["minAvailable"].as_u64().unwrap();
    assert_eq!(replicas, 3);
    assert_eq!(min_available, 2);
    assert!(min_available < replicas, "the PDB would block every drain");

    let spec = pod_spec();
    for constraint in spec["topologySpreadConstraints"].as_array().unwrap() {
        assert_selects(
            &constraint["labelSelector"]["matchLabels"],
            &pod,
            "topologySpreadConstraints",
        );
    }
    assert!(spec["topologySpreadConstraints"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["topologyKey"] == "kubernetes.io/hostname"
            && c["whenUnsatisfiable"] == "DoNotSchedule"));
}

#[test]
fn pod_runs_as_the_image_user_with_a_read_only_root_and_a_writable_tmp() {
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let user = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("Dockerfile USER");
    let (uid, gid) = user.trim().split_once(':').unwrap();
    let spec = pod_spec();
    let sc = &spec["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["runAsUser"].as_u64().unwrap().to_string(), uid);
    assert_eq!(sc["runAsGroup"].as_u64().unwrap().to_string(), gid);
    let c = container();
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);

    // Temp files (PyPI upload spools on S3) go to TMPDIR, or /tmp: an emptyDir there.
    let tmpdir = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "TMPDIR")
        .map(|e| str_of(&e["value"], "TMPDIR").to_string())
        .unwrap_or_else(|| "/tmp".into());
    let mount = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == tmpdir.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("nothing writable mounted at {tmpdir}"));
    assert_ne!(mount["readOnly"], true);
    let volume = spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .cloned()
        .unwrap();
    assert!(volume["emptyDir"].is_object(), "{tmpdir} is an emptyDir");
}

#[test]
fn resources_are_sized_from_the_benchmarks() {
    let resources = container()["resources"].clone();
    let memory = |which: &str| {
        mebibytes(str_of(
            &resources[which]["memory"],
            &format!("resources.{which}.memory"),
        ))
    };
    let cpu = |which: &str| {
        cpus(str_of(
            &resources[which]["cpu"],
            &format!("resources.{which}.cpu"),
        ))
    };
    // ~60 MiB peak RSS streaming 8 downloads, plus the metadata cache it is configured with.
    let cache_mib = config()["cache"]["metadata_bytes"]
        .as_integer()
        .unwrap_or(160 << 20) as f64
        / 1048576.0;
    assert!(
        memory("requests") >= 60.0 + cache_mib,
        "memory request below peak RSS + metadata cache"
    );
    assert!(memory("limits") >= 2.0 * memory("requests"));
    // ~0.5 CPU-s per GiB: half a CPU is ~1 GiB/s.
    assert!(cpu("requests") >= 0.25);
    assert!(cpu("limits") >= cpu("requests"));
}

#[test]
fn termination_grace_exceeds_shutdown_grace() {
    let grace = config()
        .get("shutdown_grace")
        .map(|v| humantime::parse_duration(v.as_str().unwrap()).unwrap())
        .unwrap_or(Duration::from_secs(30));
    let k8s = pod_spec()["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("terminationGracePeriodSeconds");
    assert!(
        Duration::from_secs(k8s) > grace,
        "terminationGracePeriodSeconds {k8s} must exceed shutdown_grace {grace:?}"
    );
}

/// Name -> (secret, key) for every variable the container gets from a Secret, plus
/// plain `value`s as (None, value).
fn container_env() -> BTreeMap<String, (Option<String>, String)> {
    let secrets: BTreeMap<String, Value> = of_kind("Secret")
        .into_iter()
        .map(|(_, s)| (str_of(&s["metadata"]["name"], "name").to_string(), s))
        .collect();
    let c = container();
    let mut env = BTreeMap::new();
    for from in c["envFrom"].as_array().cloned().unwrap_or_default() {
        let name = str_of(&from["secretRef"]["name"], "envFrom secretRef").to_string();
        let secret = secrets
            .get(&name)
            .unwrap_or_else(|| panic!("envFrom names Secret {name}, not in deploy/"));
        for key in secret["stringData"].as_object().unwrap().keys() {
            env.insert(key.clone(), (Some(name.clone()), key.clone()));
        }
    }
    for e in c["env"].as_array().cloned().unwrap_or_default() {
        let name = str_of(&e["name"], "env name").to_string();
        let value = e["value"].as_str().unwrap_or_default().to_string();
        env.insert(name, (None, value));
    }
    env
}

#[test]
fn environment_agrees_with_the_config_file() {
    let env = container_env();
    let config = config();
    // The image sets AIRLOCK_STORE; environment beats the file, so it must be the same.
    let store = config["store"].as_str().unwrap();
    assert!(store.starts_with("s3://"), "several replicas need S3");
    assert_eq!(
        env.get("AIRLOCK_STORE").map(|(_, v)| v.as_str()),
        Some(store),
        "AIRLOCK_STORE (set by the Dockerfile) would override `store`"
    );
    for var in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AIRLOCK_ADMIN_TOKEN",
    ] {
        assert!(
            matches!(env.get(var), Some((Some(_), _))),
            "{var} from a Secret"
        );
    }
    let tokens = config["tokens"].as_array().unwrap();
    assert!(!tokens.is_empty());
    for token in tokens {
        let var = token["secret_env"].as_str().expect("tokens use secret_env");
        assert!(
            matches!(env.get(var), Some((Some(_), _))),
            "[[tokens]] secret_env {var} is not given to the container from a Secret"
        );
    }
}

#[test]
fn the_real_binary_accepts_the_configmap() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("airlock.toml");
    std::fs::write(&file, config_text()).unwrap();
    let store = dir.path().join("store");
    let secret = "0123456789abcdef0123456789abcdef";
    let check = |config: &Path| {
        let mut cmd = airlock();
        cmd.arg("--config")
            .arg(config)
            // Flags beat the file: a temporary directory instead of the S3 bucket, so
            // only the configuration is checked.
            .arg("--store")
            .arg(&store)
            .arg("check");
        for token in config_tokens() {
            cmd.env(token, secret);
        }
        cmd.output().unwrap()
    };
    let out = check(&file);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "airlock check refused the ConfigMap: {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n = config_tokens().len();
    assert!(
        stdout.contains(&format!("tokens: {n} configured")),
        "{stdout}"
    );
    assert!(stdout.contains("listen: 0.0.0.0:8080"), "{stdout}");

    // The same check refuses a key that does not exist, so it really reads the file.
    let bad = dir.path().join("bad.toml");
    let misspelt = config_text().replace("mutable_ttl", "mutable_tll");
    assert_ne!(misspelt, config_text());
    std::fs::write(&bad, misspelt).unwrap();
    let out = check(&bad);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("mutable_tll"));
    let unknown = dir.path().join("unknown.toml");
    std::fs::write(&unknown, format!("no_such_key = 1\n{}", config_text())).unwrap();
    let out = check(&unknown);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no_such_key"));
}

fn config_tokens() -> Vec<String> {
    config()
        .get("tokens")
        .and_then(|t| t.as_array())
        .map(|t| {
            t.iter()
                .filter_map(|t| t.get("secret_env")?.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn hosts_toml_args() -> Vec<String> {
    let mut args = vec!["oci".to_string(), "hosts-toml".to_string()];
    for upstream in NODE_UPSTREAMS {
        args.push("--upstream".into());
        args.push(upstream.to_string());
    }
    args.push("--airlock".into());
    args.push(NODE_AIRLOCK_URL.into());
    args
}

#[test]
fn node_files_are_what_hosts_toml_generates() {
    let args = hosts_toml_args();
    // The README shows the command the files came from.
    let readme = std::fs::read_to_string(deploy().join("README.md")).unwrap();
    let shown = format!("airlock {}", args.join(" "));
    assert!(
        readme.contains(&shown),
        "deploy/README.md must show `{shown}`"
    );

    let dir = tempfile::tempdir().unwrap();
    let out = airlock()
        .args(&args)
        .arg("--write")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();

    let nodes = deploy().join("nodes");
    let committed: BTreeSet<String> = std::fs::read_dir(nodes.join("certs.d"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let expected: BTreeSet<String> = NODE_UPSTREAMS.iter().map(|s| s.to_string()).collect();
    assert_eq!(committed, expected, "deploy/nodes/certs.d/<upstream>/");
    for upstream in NODE_UPSTREAMS {
        let generated =
            std::fs::read_to_string(dir.path().join(upstream).join("hosts.toml")).unwrap();
        let file = nodes.join("certs.d").join(upstream).join("hosts.toml");
        let ours = std::fs::read_to_string(&file).unwrap();
        assert_eq!(ours, generated, "{} differs from `{shown}`", file.display());
        assert!(ours.contains(NODE_AIRLOCK_URL));
    }

    // The podman/CRI-O snippet: what follows its header in the printed text.
    let header = "# podman, CRI-O, skopeo: /etc/containers/registries.conf.d/airlock.conf\n";
    let snippet = printed.split(header).nth(1).expect("podman section");
    let file = nodes.join("registries.conf.d").join("airlock.conf");
    let ours = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        ours.trim_end(),
        snippet.trim_end(),
        "{} differs from `{shown}`",
        file.display()
    );
    for upstream in NODE_UPSTREAMS {
        assert!(ours.contains(&format!("prefix = \"{upstream}\"")));
    }
}

#[test]
fn the_mlis_guide_spec_is_a_valid_content_spec() {
    let guide = std::fs::read_to_string(root().join("docs/mlis.md")).unwrap();
    let block = guide
        .split("```toml\n# mirror.toml\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("docs/mlis.md has a ```toml block starting with `# mirror.toml`");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mirror.toml");
    std::fs::write(&file, block).unwrap();
    let spec = airlock::spec::ContentSpec::load(&file).unwrap();
    assert!(!spec.hf.is_empty() && !spec.pypi.is_empty());
    let hosts: BTreeSet<&str> = spec
        .oci
        .iter()
        .map(|o| o.image.split('/').next().unwrap())
        .collect();
    // Every registry the guide's images come from has a node file in deploy/nodes/.
    for host in &hosts {
        assert!(
            NODE_UPSTREAMS.contains(host),
            "{host}: images from it, but no deploy/nodes/certs.d/{host}/"
        );
    }
    for needed in ["quay.io", "docker.io"] {
        assert!(hosts.contains(needed), "{needed}");
    }
}
