//! pip, uv and twine themselves against the real server on loopback, on the filesystem
//! store and on S3 (Garage). `tests/run-all.sh` provides the clients in a virtualenv
//! (AIRLOCK_TEST_VENV) and a setuptools wheel for building sdists offline
//! (AIRLOCK_TEST_WHEELHOUSE).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::backend::{Backend, StoreArgs};
use support::process::{ok, venv_dir};
use support::wheels::{sdist, wheel};

const ADMIN: &str = "admin-token-for-tests-0123";

/// A tool from the test virtualenv, with no index configuration leaking in.
fn tool(name: &str) -> Command {
    let mut cmd = Command::new(venv_dir("AIRLOCK_TEST_VENV").join("bin").join(name));
    for (k, _) in std::env::vars() {
        if k.starts_with("PIP_") || k.starts_with("UV_") || k.starts_with("TWINE_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("PIP_CONFIG_FILE", "/dev/null")
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .env("PIP_NO_INPUT", "1");
    cmd
}

/// The wheelhouse of the tests: a dependency chain with a yanked release, a release
/// whose Requires-Python excludes every interpreter, and an sdist-only dependency.
fn wheelhouse(dir: &Path) -> PathBuf {
    let house = dir.join("wheelhouse");
    std::fs::create_dir_all(&house).unwrap();
    wheel(
        "requests",
        "2.32.0",
        &["idna>=3", "urllib3>=2", "charset-normalizer"],
        Some(">=3.8"),
    )
    .write_to(&house);
    wheel("idna", "3.7", &[], None).write_to(&house);
    wheel("idna", "4.0", &[], Some(">=3.99")).write_to(&house);
    wheel("urllib3", "2.2.0", &[], None).write_to(&house);
    wheel("urllib3", "2.3.0", &[], None).write_to(&house);
    sdist("charset-normalizer", "3.3.0", &[]).write_to(&house);
    // The build backend for the sdist, a real wheel fetched by run-all.sh.
    for entry in std::fs::read_dir(venv_dir("AIRLOCK_TEST_WHEELHOUSE")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, house.join(path.file_name().unwrap())).unwrap();
    }
    house
}

fn import_and_yank(store: &StoreArgs, dir: &Path, house: &Path) {
    // The import and yank commands run on the same store configuration as the server.
    let out = ok(store
        .cli(dir)
        .args(["pypi", "import", house.to_str().unwrap()]));
    assert!(out.contains("7 added"), "{out}");
    ok(store.cli(dir).args([
        "pypi",
        "yank",
        "urllib3",
        "2.3.0",
        "--reason",
        "broken release",
    ]));
}

fn new_venv(dir: &Path, name: &str) -> PathBuf {
    let venv = dir.join(name);
    ok(tool("python").args(["-m", "venv"]).arg(&venv));
    venv
}

fn installed_version(venv: &Path, module: &str) -> String {
    let out = ok(Command::new(venv.join("bin/python")).args([
        "-c",
        &format!("import {module}; print({module}.__version__)"),
    ]));
    out.trim().to_string()
}

fn pip_installs_a_dependency_chain(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreArgs::new(backend, dir.path());
    let server = store.serve(dir.path(), &["--admin-token", ADMIN]);
    let house = wheelhouse(dir.path());
    import_and_yank(&store, dir.path(), &house);
    // The yank must be visible before pip resolves (pages are cached for cache.mutable_ttl).
    std::thread::sleep(std::time::Duration::from_secs(6));

    let venv = new_venv(dir.path(), "venv-pip");
    let index = server.url("/simple/");
    let mut pip = Command::new(venv.join("bin/pip"));
    pip.env("PIP_CONFIG_FILE", "/dev/null")
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1");
    ok(pip.args([
        "install",
        "--no-cache-dir",
        "--index-url",
        &index,
        "requests",
    ]));
    assert_eq!(installed_version(&venv, "requests"), "2.32.0");
    // idna 4.0 requires a Python that does not exist; urllib3 2.3.0 is yanked.
    assert_eq!(installed_version(&venv, "idna"), "3.7");
    assert_eq!(installed_version(&venv, "urllib3"), "2.2.0");
    // Built from the sdist, with setuptools from this index too.
    assert_eq!(installed_version(&venv, "charset_normalizer"), "3.3.0");
    // A yanked release is still installable when pinned exactly.
    let mut pip = Command::new(venv.join("bin/pip"));
    pip.env("PIP_CONFIG_FILE", "/dev/null")
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1");
    let out = ok(pip.args([
        "install",
        "--no-cache-dir",
        "--index-url",
        &index,
        "urllib3==2.3.0",
    ]));
    assert!(out.to_lowercase().contains("yanked"), "{out}");
    assert_eq!(installed_version(&venv, "urllib3"), "2.3.0");
    // Nothing pip asked for failed.
    assert!(!server.log().contains("status=5"), "{}", server.log());
    if backend == Backend::S3Redirect {
        // The wheels came from Garage by presigned URL, not through Airlock.
        assert!(
            server
                .log()
                .lines()
                .any(|l| l.contains(".whl") && l.contains("status=307")),
            "{}",
            server.log()
        );
    }
}

#[test]
#[ignore = "needs pip and Garage: `bash tests/run-all.sh` sets them up"]
fn pip_installs_from_presigned_s3_redirects() {
    pip_installs_a_dependency_chain(Backend::S3Redirect);
}

fn uv_resolves_from_metadata_only(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreArgs::new(backend, dir.path());
    let server = store.serve(dir.path(), &["--admin-token", ADMIN]);
    let house = wheelhouse(dir.path());
    import_and_yank(&store, dir.path(), &house);
    std::thread::sleep(std::time::Duration::from_secs(6));
    let index = server.url("/simple/");
    let cache = dir.path().join("uv-cache");
    let requirements = dir.path().join("requirements.in");
    std::fs::write(&requirements, "requests\n").unwrap();

    let before = server.log().len();
    let out = ok(tool("uv")
        .args([
            "pip",
            "compile",
            "--no-config",
            "--index-url",
            &index,
            "--cache-dir",
        ])
        .arg(&cache)
        .arg(&requirements));
    for pin in [
        "requests==2.32.0",
        "idna==3.7",
        "urllib3==2.2.0",
        "charset-normalizer==3.3.0",
    ] {
        assert!(out.contains(pin), "{pin} missing from:\n{out}");
    }
    // uv read the .metadata files; no wheel of a package that was only resolved was
    // downloaded (the sdist had to be built, with setuptools, to learn its metadata).
    let log = server.log()[before..].to_string();
    let wheel_bodies: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("route=pypi.file") && l.contains(".whl"))
        .collect();
    assert!(
        wheel_bodies.iter().all(|l| l.contains("/setuptools-")),
        "wheel bodies downloaded while resolving:\n{}",
        wheel_bodies.join("\n")
    );
    assert!(
        log.contains("route=pypi.metadata")
            && log.contains("requests-2.32.0-py3-none-any.whl.metadata"),
        "{log}"
    );

    let venv = new_venv(dir.path(), "venv-uv");
    ok(tool("uv")
        .args([
            "pip",
            "install",
            "--no-config",
            "--index-url",
            &index,
            "--cache-dir",
        ])
        .arg(&cache)
        .arg("--python")
        .arg(venv.join("bin/python"))
        .arg("requests"));
    assert_eq!(installed_version(&venv, "urllib3"), "2.2.0");
    assert_eq!(installed_version(&venv, "idna"), "3.7");
}

fn twine_uploads_then_pip_installs(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let server = StoreArgs::new(backend, dir.path()).serve(dir.path(), &["--admin-token", ADMIN]);
    let dist = dir.path().join("dist");
    std::fs::create_dir_all(&dist).unwrap();
    let wheel_path = wheel("shiny-model-tools", "0.1.0", &[], Some(">=3.8")).write_to(&dist);
    let sdist_path = sdist("shiny-model-tools", "0.1.0", &[]).write_to(&dist);
    let legacy = server.url("/legacy/");
    let twine = |token: &str, extra: &[&str], files: &[&Path]| {
        upload_with(tool("twine"), &legacy, token, extra, files)
    };
    let out = twine(ADMIN, &[], &[&wheel_path, &sdist_path]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let venv = new_venv(dir.path(), "venv-twine");
    let mut pip = Command::new(venv.join("bin/pip"));
    pip.env("PIP_CONFIG_FILE", "/dev/null")
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1");
    ok(pip.args([
        "install",
        "--no-cache-dir",
        "--index-url",
        &server.url("/simple/"),
        "shiny-model-tools",
    ]));
    assert_eq!(installed_version(&venv, "shiny_model_tools"), "0.1.0");

    // Same name, different content: refused, and --skip-existing lets a re-run pass.
    let changed = dir.path().join("changed");
    std::fs::create_dir_all(&changed).unwrap();
    let conflicting =
        wheel("shiny-model-tools", "0.1.0", &["idna"], Some(">=3.8")).write_to(&changed);
    let out = twine(ADMIN, &[], &[&conflicting]);
    assert!(!out.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("409") || text.contains("already exists"),
        "{text}"
    );
    // twine 6.2 and later allow --skip-existing only against pypi.org; 6.1 is the last
    // that honours it elsewhere, recognising the 409.
    let old_twine = Command::new(venv_dir("AIRLOCK_TEST_TWINE_SKIP_EXISTING"));
    let out = upload_with(
        old_twine,
        &legacy,
        ADMIN,
        &["--skip-existing"],
        &[&conflicting],
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && text.contains("Skipping"), "{text}");
    // uv publish checks the index first and skips a file that is already there.
    let out = ok(tool("uv")
        .args([
            "publish",
            "--no-config",
            "--publish-url",
            &legacy,
            "--check-url",
            &server.url("/simple/"),
        ])
        .args(["-u", "__token__", "-p", ADMIN])
        .arg(&wheel_path));
    assert!(out.to_lowercase().contains("skipping"), "{out}");
    // A wrong token is refused.
    let fresh = wheel("shiny-model-tools", "0.2.0", &[], None).write_to(&changed);
    let out = twine("not-a-valid-token-0000", &[], &[&fresh]);
    assert!(!out.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("401") || text.contains("403"), "{text}");
}

fn upload_with(
    mut twine: Command,
    url: &str,
    token: &str,
    extra: &[&str],
    files: &[&Path],
) -> Output {
    twine
        .args([
            "upload",
            "--non-interactive",
            "--disable-progress-bar",
            "--repository-url",
            url,
        ])
        .args(["-u", "__token__", "-p", token])
        .args(extra)
        .args(files);
    twine.output().expect("run client")
}

on_both_stores!(
    sync,
    ignore_fs = "needs pip, uv and twine: `bash tests/run-all.sh` sets them up",
    ignore_s3 = "needs pip, uv, twine and Garage: `bash tests/run-all.sh` sets them up":
    pip_installs_a_dependency_chain,
    uv_resolves_from_metadata_only,
    twine_uploads_then_pip_installs
);
