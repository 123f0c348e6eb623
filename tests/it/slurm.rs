//! Slurm job arrays against a real one-node Slurm (Debian's slurmctld + slurmd + munge, started
//! by scripts/slurm.sh): deploy/slurm/submit.sh submits convert, load and merge as arrays of 4
//! shards, each followed by its finalize job (`--dependency=afterok`), into a local staging
//! folder (the shared file system of a cluster) and PostgreSQL. The result equals one process
//! byte for byte and row for row, also after one array task is cancelled (`scancel
//! <job>_<task>`) and resubmitted alone; an array that does not fit `--shards` fails every task
//! with one line. Jobs are followed with `scontrol show job` (there is no accounting database).

use crate::common::*;
use crate::shard::{config, sources, ShardSchema, DATASETS};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// How long a batch of jobs may take before the test gives up: generous, as the machine's
/// cores are shared; the failure message shows every job's state and output.
const DEADLINE: Duration = Duration::from_secs(900);

/// The test cluster: its slurm.conf, given to every Slurm command as SLURM_CONF.
struct Slurm {
    conf: String,
}

/// The cluster scripts/slurm.sh started, or `None` after one `skipped` line when there is
/// none (a failure instead where services are required: [`require`]).
fn slurm() -> Option<Slurm> {
    if !require(&[Need::Slurm, Pg]) {
        return None;
    }
    Some(Slurm { conf: std::env::var("RASTERSTAGE_TEST_SLURM_CONF").unwrap() })
}

/// One job record of `scontrol show job`: an array task or a plain job.
#[derive(Debug, Clone)]
struct JobState {
    /// `<array job id>_<task id>` for an array task, else the job id.
    id: String,
    state: String,
    reason: String,
}

impl Slurm {
    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("SLURM_CONF", &self.conf);
        c
    }

    /// Runs a Slurm command, asserts success, returns stdout.
    fn run(&self, program: &str, args: &[&str]) -> String {
        let out = self.command(program).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{program} {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs deploy/slurm/submit.sh with `steps`; returns (step, array job id, finalize job id).
    fn submit(&self, cwd: &Path, env: &[(&str, &str)], steps: &[&str]) -> Vec<(String, String, String)> {
        let mut c = self.command(repo_file("deploy/slurm/submit.sh").to_str().unwrap());
        c.current_dir(cwd).args(steps).env("RASTERSTAGE", env!("CARGO_BIN_EXE_rasterstage"));
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "submit.sh {steps:?} failed:\n{stdout}{}", String::from_utf8_lossy(&out.stderr));
        let jobs: Vec<(String, String, String)> = stdout
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let id = |i: usize, key: &str| {
                    f.get(i)
                        .and_then(|s| s.strip_prefix(key))
                        .unwrap_or_else(|| panic!("submit.sh line {l:?}"))
                        .to_string()
                };
                (f[0].to_string(), id(1, "array="), id(2, "finalize="))
            })
            .collect();
        assert_eq!(jobs.iter().map(|j| j.0.as_str()).collect::<Vec<_>>(), steps, "{stdout}");
        jobs
    }

    /// Every record of `job` (each task of an array once Slurm has split it).
    fn states(&self, job: &str) -> Vec<JobState> {
        self.run("scontrol", &["-o", "show", "job", job])
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let field = |k: &str| {
                    l.split_whitespace().find_map(|f| f.strip_prefix(k).map(String::from)).unwrap_or_default()
                };
                let task = field("ArrayTaskId=");
                let id = if task.is_empty() { field("JobId=") } else { format!("{}_{task}", field("ArrayJobId=")) };
                JobState { id, state: field("JobState="), reason: field("Reason=") }
            })
            .collect()
    }

    /// Waits until every record of every job in `jobs` has ended; returns them by id. Past
    /// [`DEADLINE`], fails showing the states and the jobs' output files in `logs`.
    fn wait_ended(&self, jobs: &[&str], logs: &Path) -> BTreeMap<String, JobState> {
        const RUNNING: [&str; 8] =
            ["PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "RESIZING", "SUSPENDED", "STAGE_OUT"];
        let start = Instant::now();
        loop {
            let all: BTreeMap<String, JobState> =
                jobs.iter().flat_map(|j| self.states(j)).map(|s| (s.id.clone(), s)).collect();
            if all.values().all(|s| !RUNNING.contains(&s.state.as_str())) {
                return all;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "Slurm jobs {jobs:?} still not ended after {DEADLINE:?}: {:#?}\n{}",
                all.values().collect::<Vec<_>>(),
                job_logs(logs)
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// The jobs' output files, for failure messages.
fn job_logs(logs: &Path) -> String {
    if !logs.is_dir() {
        return String::new();
    }
    files_under(logs)
        .into_iter()
        .map(|(name, text)| format!("--- {name}\n{}", String::from_utf8_lossy(&text)))
        .collect()
}

/// Asserts that every job record is COMPLETED.
fn assert_completed(states: &BTreeMap<String, JobState>, logs: &Path) {
    let bad: Vec<&JobState> = states.values().filter(|s| s.state != "COMPLETED").collect();
    assert!(bad.is_empty(), "Slurm jobs did not complete: {bad:#?}\n{}", job_logs(logs));
}

/// [`config`] with the load's schema and the merge section, so the jobs need nothing but
/// `--config`.
fn slurm_config(dir: &Path, file: &str, out: &Path, schema: &str) -> String {
    let path = config(dir, file, s(out));
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!(
        "database:\n  schema: {schema}\nmerge:\n  name: merged\n  datasets: [richness, cover, temp]\n  format: parquet\n"
    ));
    std::fs::write(&path, text).unwrap();
    path
}

/// Files under a folder, as [`files_under`] gives them.
type Files = Vec<(String, Vec<u8>)>;

/// One process: convert into `dir/single`, load into its own schema.
fn reference(dir: &Path) -> (Files, Vec<String>, Schema) {
    let sc = Schema::new("slurm_ref");
    let single = dir.join("single");
    let cfg = slurm_config(dir, "single.yml", &single, &sc.name);
    ok(&["-q", "convert", "--config", &cfg]);
    ok(&["-q", "load", "--config", &cfg, "--database-url", &db_url()]);
    (files_under(&single), sc.snapshot(&DATASETS), sc)
}

/// Asserts that `got` and `want` are the same files with the same bytes.
fn assert_same_files(got: &Files, want: &Files) {
    let names = |v: &Files| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(got), names(want), "same files as one process");
    for ((name, a), (_, b)) in got.iter().zip(want) {
        assert!(a == b, "{name} differs from the single-process run");
    }
}

/// The files under `root` whose path does (`inside`) or does not start with `prefix`.
fn files_split(root: &Path, prefix: &str, inside: bool) -> Files {
    files_under(root).into_iter().filter(|(n, _)| n.starts_with(prefix) == inside).collect()
}

/// A test's sources, its single-process reference, and the sharded run's staging folder,
/// config, schema and job output folder.
struct Fixture {
    dir: tempfile::TempDir,
    want_files: Files,
    want_rows: Vec<String>,
    _ref_schema: Schema,
    sc: Schema,
    out: std::path::PathBuf,
    cfg: String,
    logs: std::path::PathBuf,
}

impl Fixture {
    fn new(tag: &str) -> Fixture {
        let dir = tmp();
        sources(dir.path());
        let (want_files, want_rows, _ref_schema) = reference(dir.path());
        assert!(want_files.iter().filter(|(n, _)| n.ends_with(".parquet")).count() > 40, "enough tiles to share");
        let sc = Schema::new(tag);
        let out = dir.path().join("sharded");
        let cfg = slurm_config(dir.path(), "slurm.yml", &out, &sc.name);
        let logs = dir.path().join("logs");
        Fixture { dir, want_files, want_rows, _ref_schema, sc, out, cfg, logs }
    }

    /// deploy/slurm/submit.sh `steps` with SHARDS=4, one CPU per task, and `env`.
    fn submit(&self, slurm: &Slurm, env: &[(&str, &str)], steps: &[&str]) -> Vec<(String, String, String)> {
        let mut all = vec![("CONFIG", self.cfg.as_str()), ("SHARDS", "4"), ("CPUS", "1"), ("LOGS", s(&self.logs))];
        all.extend_from_slice(env);
        slurm.submit(self.dir.path(), &all, steps)
    }

    /// Submits `steps`, waits for every job and asserts they all completed; returns them.
    fn run_all(&self, slurm: &Slurm, env: &[(&str, &str)], steps: &[&str]) -> BTreeMap<String, JobState> {
        let jobs = self.submit(slurm, env, steps);
        let ids: Vec<&str> = jobs.iter().flat_map(|(_, a, f)| [a.as_str(), f.as_str()]).collect();
        let states = slurm.wait_ended(&ids, &self.logs);
        assert_completed(&states, &self.logs);
        states
    }
}

#[test]
fn slurm_array_of_four_equals_one_process() {
    let Some(slurm) = slurm() else { return };
    let f = Fixture::new("slurm4");
    let Fixture { out, cfg, sc, want_files, want_rows, .. } = &f;
    let states = f.run_all(&slurm, &[], &["convert", "load", "merge"]);
    // 4 tasks and a finalize job per step.
    assert_eq!(states.len(), 15, "{states:#?}");

    assert_same_files(&files_split(out, "merged/", false), want_files);
    assert_eq!(&sc.snapshot(&DATASETS), want_rows, "tables, primary keys, ledger and raster_datasets");
    // The merged Parquet records where its inputs are, so its reference is one merge process
    // reading the same inputs.
    let single_merge = f.dir.path().join("merge-single");
    ok(&["-q", "merge", "--config", cfg, "--out", s(&single_merge.join("merged"))]);
    let want_merged = files_under(&single_merge);
    assert!(want_merged.iter().filter(|(n, _)| n.ends_with(".parquet")).count() > 10, "enough merged tiles");
    assert_same_files(&files_split(out, "merged/", true), &want_merged);
}

#[test]
fn slurm_task_cancelled_and_resubmitted_ends_identical() {
    let Some(slurm) = slurm() else { return };
    let f = Fixture::new("slurm_kill");
    let Fixture { out, cfg, sc, want_files, want_rows, logs, .. } = &f;
    // The tiles of shard 2, from the same plan every task computes.
    let plan: serde_json::Value =
        serde_json::from_str(&ok(&["plan", "--config", cfg, "--shards", "4", "--json"])).unwrap();
    let mine: BTreeSet<(String, String)> = plan["assignment"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["shard"] == 2)
        .map(|t| (t["dataset"].as_str().unwrap().to_string(), t["tile"].as_str().unwrap().to_string()))
        .collect();
    assert!(mine.len() > 3, "shard 2 has tiles: {mine:?}");
    let committed = |out: &Path| {
        mine.iter().filter(|(ds, tile)| out.join(ds).join("_tiles").join(format!("{tile}.json")).is_file()).count()
    };

    // Tiles slowed down, so that task 2 is still running once it has committed its first one.
    let jobs = f.submit(&slurm, &[("RASTERSTAGE_TEST_TILE_DELAY_MS", "800")], &["convert"]);
    let (array, finalize) = (jobs[0].1.clone(), jobs[0].2.clone());
    let task2 = format!("{array}_2");
    let start = Instant::now();
    while committed(out) == 0 {
        let now = slurm.states(&array);
        assert!(
            start.elapsed() < DEADLINE
                && now.iter().all(|t| t.id != task2 || t.state == "PENDING" || t.state == "RUNNING"),
            "task {task2} never committed a tile while running: {now:#?}\n{}",
            job_logs(logs)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    slurm.run("scancel", &[task2.as_str()]);
    let states = slurm.wait_ended(&[&array, &finalize], logs);
    let killed = &states[&task2];
    assert_eq!(
        killed.state,
        "CANCELLED",
        "task 2 should have been cancelled mid-run ({} of its {} tiles committed): {states:#?}",
        committed(out),
        mine.len()
    );
    assert!(committed(out) < mine.len(), "the cancelled task left tiles uncommitted");
    for k in [0, 1, 3] {
        assert_eq!(states[&format!("{array}_{k}")].state, "COMPLETED", "{states:#?}\n{}", job_logs(logs));
    }
    // --kill-on-invalid-dep: the finalize job is cancelled, not left pending forever.
    assert_eq!(states[&finalize].state, "CANCELLED", "{states:#?}");
    assert!(states[&finalize].reason.starts_with("Dependency"), "{states:#?}");
    let err = fails(&["finalize", "--config", cfg]);
    assert!(err.contains("not complete"), "{err}");

    // Task 2 alone (--array=2: a partial array, the index used as it is), then load.
    let states = f.run_all(&slurm, &[("TASKS", "2")], &["convert", "load"]);
    assert_eq!(states.len(), 1 + 1 + 4 + 1, "{states:#?}");

    assert_same_files(&files_under(out), want_files);
    assert_eq!(&sc.snapshot(&DATASETS), want_rows, "tables, primary keys, ledger and raster_datasets");
}

#[test]
fn slurm_array_not_fitting_shards_fails_every_task_in_one_line() {
    let Some(slurm) = slurm() else { return };
    let dir = tmp();
    sources(dir.path());
    let out = dir.path().join("out");
    let cfg = config(dir.path(), "c.yml", s(&out));
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let bin = env!("CARGO_BIN_EXE_rasterstage");
    // 1-based, and twice as many tasks as shards.
    for (array, needles) in [
        ("1-4", ["SLURM_ARRAY_TASK_MIN=1", "task ids go up to 4, shards are 0 to 3"]),
        ("0-7", ["SLURM_ARRAY_TASK_COUNT=8", "task ids go up to 7, shards are 0 to 3"]),
    ] {
        let job = slurm.run(
            "sbatch",
            &[
                "--parsable",
                &format!("--array={array}"),
                "--cpus-per-task=1",
                &format!("--output={}/{array}-%a.out", s(&logs)),
                "--wrap",
                &format!("exec {bin} convert --config {cfg} --shards 4"),
            ],
        );
        let job = job.trim().split(';').next().unwrap().to_string();
        let states = slurm.wait_ended(&[&job], &logs);
        let n = if array == "1-4" { 4 } else { 8 };
        assert_eq!(states.len(), n, "{states:#?}");
        assert!(states.values().all(|s| s.state == "FAILED"), "every task refuses the array: {states:#?}");
        for task in states.keys() {
            let k = task.rsplit('_').next().unwrap();
            let text = std::fs::read_to_string(logs.join(format!("{array}-{k}.out"))).unwrap();
            one_error_line(&text, &[needles[0], needles[1], "--shards 4", "--array=0-3"]);
        }
    }
    assert!(!out.exists(), "nothing written");
}
