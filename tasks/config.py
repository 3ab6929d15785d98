"""The luigi.cfg sections shared by the tasks: where the data lives, which dataset runs, when the
pipeline starts, native threads, the deployment gate and the monitoring thresholds. Each class
reads the section its `section` names, so no class shadows a module name."""
from __future__ import annotations

import datetime as dt
import functools
import os

import luigi
import luigi.configuration

from pipeline import metrics, registry, signing
from pipeline.artifact import LIBRARY_POLICIES
from pipeline.dataset import Dataset
from pipeline.description import BUILTIN, cached
from pipeline.storage import Storage, resolve_root


class Section(luigi.Config):
    """A luigi.Config read from the luigi.cfg section `section` (luigi reads a Config's section by
    its task family, which is the class name unless given)."""
    section = ""

    @classmethod
    def get_task_family(cls):
        return cls.section or super().get_task_family()


class StorageConfig(Section):
    section = "storage"
    root = luigi.Parameter(
        default="",
        description="Storage root for every output; $MLPIPE_ROOT overrides it; empty means the project's var/")
    landing = luigi.Parameter(
        default="",
        description="Landing zone the upstream system drops files into; $MLPIPE_LANDING overrides it; "
                    "empty means {root}/landing")


class LandingConfig(Section):
    """What becomes of a day whose landing file is re-delivered with other content after the day
    was validated, and how long `mlpipe run` waits for landing files not delivered yet."""
    section = "landing"
    REDELIVERY = ("fail", "reprocess")
    redelivery = luigi.ChoiceParameter(
        choices=REDELIVERY, default="fail", var_type=str, significant=False,
        description="fail: the day's CleanPartition fails (exit 30) naming the `mlpipe invalidate` command that "
                    "reprocesses it; reprocess: `mlpipe run` and `backfill` first remove the day's clean outputs "
                    "and everything downstream, so the run processes the new delivery")
    wait = luigi.FloatParameter(
        default=420.0, significant=False,
        description="Seconds `mlpipe run` waits for its date's landing files (and earlier days' it needs) that are "
                    "not delivered yet before running the pipeline without them (exit 20); 0 = no wait")
    wait_poll = luigi.FloatParameter(
        default=15.0, significant=False,
        description="Seconds between two checks of the landing files while `mlpipe run` waits for them")
    wait_report = luigi.FloatParameter(
        default=60.0, significant=False,
        description="Seconds between two lines (log and luigid status message) saying what the wait is for")


def dataset_path() -> str:
    """The dataset description (TOML) the pipeline runs: `mlpipe --dataset` (which sets
    $MLPIPE_DATASET), else $MLPIPE_DATASET, else [dataset] path in luigi.cfg, else the flights
    data. Read straight from the configuration, not through a luigi.Config class: the stages ask
    for it at every use, and resolving a luigi.Config costs ~0.1 ms each time."""
    return (os.environ.get("MLPIPE_DATASET") or luigi.configuration.get_config().get("dataset", "path", "")
            or BUILTIN)


def current_dataset() -> Dataset:
    """The dataset the pipeline runs (dataset_path()), loaded once per change of its file."""
    return cached(dataset_path())


class PipelineConfig(Section):
    section = "pipeline"
    start_date = luigi.DateParameter(
        default=dt.date(2013, 1, 1),
        description="First day of data the pipeline uses; nothing earlier is required")
    warmup_days = luigi.IntParameter(
        default=14,
        description="Days of data collected before the first model is trained and deployed")

    @property
    def first_deploy_date(self) -> dt.date:
        return self.start_date + dt.timedelta(days=self.warmup_days)


def get_storage() -> Storage:
    """The Storage for the configured root and landing zone. One per process and configuration,
    so S3/WebHDFS clients (and their connection pools) are reused across tasks and checks."""
    cfg = StorageConfig()
    root = resolve_root(cfg.root)
    landing = os.environ.get("MLPIPE_LANDING") or cfg.landing
    s3_options = tuple(sorted(_section("s3").items()))
    hdfs_options = tuple(sorted(_section("hdfs").items())) + tuple(sorted(_section("webhdfs").items()))
    return _storage(root, landing, s3_options, hdfs_options, os.getpid())


def _section(name: str) -> dict[str, str]:
    config = luigi.configuration.get_config()
    return dict(config.items(name)) if config.has_section(name) else {}


@functools.lru_cache(maxsize=8)
def _storage(root: str, landing: str, s3_options: tuple, hdfs_options: tuple, pid: int) -> Storage:
    return Storage(root, landing=landing)


class ComputeConfig(Section):
    section = "compute"
    threads = luigi.IntParameter(
        default=1,
        description="Native threads per task (OpenMP, BLAS; pyarrow too while tasks run in parallel worker "
                    "processes). Keep threads x luigi workers <= cores: gradient boosting slows down by orders "
                    "of magnitude when its threads compete for cores")


class GateConfig(Section):
    """The deployment gate. Floors (ceilings) on the metrics of the dataset's problem kind apply;
    those of the other kind are ignored, so one luigi.cfg serves binary and regression datasets."""
    section = "gate"
    min_roc_auc = luigi.OptionalFloatParameter(default=0.60, description="Binary: floor on the challenger's holdout ROC AUC (empty: none)")
    min_average_precision = luigi.OptionalFloatParameter(default=None, description="Binary: floor on holdout average precision (empty: none)")
    max_log_loss = luigi.OptionalFloatParameter(default=None, description="Binary: ceiling on holdout log loss (empty: none)")
    max_brier = luigi.OptionalFloatParameter(default=None, description="Binary: ceiling on holdout Brier score (empty: none)")
    min_r2_vs_baseline = luigi.OptionalFloatParameter(
        default=0.0, description="Regression: floor on the holdout R2 against the naive baseline (predicting the "
                                 "training rows' mean); 0 = must beat it (empty: none)")
    min_r2 = luigi.OptionalFloatParameter(default=None, description="Regression: floor on holdout R2 (empty: none)")
    max_mae = luigi.OptionalFloatParameter(default=None, description="Regression: ceiling on holdout MAE (empty: none)")
    max_rmse = luigi.OptionalFloatParameter(default=None, description="Regression: ceiling on holdout RMSE (empty: none)")
    compare_metric = luigi.OptionalChoiceParameter(
        choices=sorted(metrics.HIGHER_IS_BETTER), default=None, var_type=str,
        description="Metric of the challenger-vs-production comparison (empty: roc_auc for binary, r2_vs_baseline "
                    "for regression; the tolerance is in its units)")
    tolerance = luigi.FloatParameter(
        default=0.02, description="How much worse than production the challenger may be, at the interval's lower end")
    bootstrap_samples = luigi.IntParameter(default=1000, description="Paired bootstrap resamples of the holdout rows")
    confidence = luigi.FloatParameter(default=0.95, description="Confidence of the bootstrap interval")
    seed = luigi.IntParameter(default=0, description="Seed of the bootstrap resampling and of the holdout sample")
    max_eval_rows = luigi.IntParameter(
        default=20_000, description="Labelled holdout rows the gate scores and resamples (a seeded uniform sample "
                                    "when there are more); 0 = all")

    def rules(self, problem: str) -> dict:
        """The gate's rules for a target of `problem` kind, as pipeline.evaluation takes them."""
        floors = {"roc_auc": self.min_roc_auc, "average_precision": self.min_average_precision,
                  "log_loss": self.max_log_loss, "brier": self.max_brier, "mae": self.max_mae,
                  "rmse": self.max_rmse, "r2": self.min_r2, "r2_vs_baseline": self.min_r2_vs_baseline}
        compare = self.compare_metric or metrics.DEFAULT_COMPARE_METRIC[problem]
        if compare not in metrics.PROBLEM_METRICS[problem]:
            raise ValueError(f"[gate] compare_metric = {compare} is not a metric of a {problem} target; choose one "
                             f"of {list(metrics.PROBLEM_METRICS[problem])} or leave it empty")
        return {"floors": {k: v for k, v in floors.items() if v is not None and k in metrics.PROBLEM_METRICS[problem]},
                "tolerance": self.tolerance, "compare_metric": compare, "bootstrap_samples": self.bootstrap_samples,
                "confidence": self.confidence, "seed": self.seed, "max_eval_rows": self.max_eval_rows}


class MonitorConfig(Section):
    section = "monitor"
    feature_psi = luigi.FloatParameter(
        default=0.25, description="Alert when the PSI of a per-row feature ([features] drift_alert of the dataset) "
                                  "exceeds this")
    prediction_psi = luigi.FloatParameter(
        default=2.0, description="Alert when the PSI of the day's predictions vs the training scores exceeds this")
    min_auc = luigi.FloatParameter(default=0.50, description="Binary: alert when the day's realized ROC AUC is below this")
    min_r2 = luigi.FloatParameter(
        default=0.0, description="Regression: alert when the day's realized R2 against the naive baseline (the "
                                 "model's training mean) is below this")
    fail_on_alert = luigi.BoolParameter(
        default=False, parsing=luigi.BoolParameter.EXPLICIT_PARSING, significant=False,
        description="`mlpipe run` exits with MONITORING_ALERT (50) when the day's monitoring raised an alert "
                    "and nothing else failed")


class SchedulerAuthConfig(Section):
    """Credentials for a central scheduler behind an authenticating proxy (docs/security.md). luigi's
    HTTP client (requests) reads them from a netrc file; `mlpipe` points it at this one."""
    section = "scheduler_auth"
    netrc = luigi.Parameter(
        default="", significant=False,
        description="netrc file (mode 600) with `machine HOST login NAME password ...` for the scheduler's "
                    "host; empty: $NETRC, else ~/.netrc. Never put credentials in [core] default-scheduler-url: "
                    "luigi logs it")


class LeaseConfig(Section):
    """The storage root's lease (pipeline.lease): one command at a time changes a root."""
    section = "lease"
    ttl = luigi.FloatParameter(
        default=120.0, description="Seconds a lease lasts without renewal; its holder renews it every ttl/3, so a "
                                   "holder that dies frees the root this long after its last renewal")
    run_wait = luigi.FloatParameter(
        default=600.0, description="Seconds `mlpipe run` and `mlpipe backfill` wait for another command's lease "
                                   "before exiting 10 (already_running)")
    manual_wait = luigi.FloatParameter(
        default=0.0, description="Seconds `mlpipe invalidate --yes` and `mlpipe models promote|rollback` wait for "
                                 "another command's lease before exiting 10; 0 = refuse at once")


class NotifyConfig(Section):
    """Where events (pipeline.notify.EVENTS) are sent: webhooks, each a [notify_webhook_NAME]
    section (WebhookConfig), and luigi's [email] receiver. Delivery never fails a run."""
    section = "notify"
    webhooks = luigi.Parameter(
        default="", significant=False,
        description="Names of the webhooks to notify, comma-separated, each set up in a [notify_webhook_NAME] "
                    "section; empty: none")
    timeout = luigi.FloatParameter(default=5.0, significant=False, description="Seconds each delivery attempt may take")
    attempts = luigi.IntParameter(
        default=3, significant=False,
        description="Attempts per webhook on a connection error, a timeout or an HTTP 5xx/429 answer")
    backoff = luigi.FloatParameter(default=1.0, significant=False, description="Seconds between attempts")
    email_events = luigi.Parameter(
        default="*", significant=False,
        description="Events also sent by email when luigi's [email] receiver is set (luigi's [email] and [smtp] "
                    "settings): comma-separated, * for all, empty for none")


class WebhookConfig(Section):
    """One webhook: the section [notify_webhook_NAME] of a name in [notify] webhooks."""
    url_env = luigi.Parameter(
        default="", significant=False,
        description="Environment variable holding the webhook's URL (never the URL itself: it is a secret); "
                    "unset or empty: the webhook is skipped with a warning")
    format = luigi.Parameter(
        default="slack", significant=False,
        description="slack: a Slack incoming-webhook message ({\"text\": ...}); json: the event as JSON")
    events = luigi.Parameter(default="*", significant=False,
                             description="Events sent to it: comma-separated, * for all")
    token_env = luigi.Parameter(
        default="", significant=False,
        description="Environment variable holding a token sent as `Authorization: Bearer <token>`; empty: none")


@functools.lru_cache(maxsize=None)
def webhook_config_class(name: str) -> type[WebhookConfig]:
    """The WebhookConfig of the webhook `name`, reading [notify_webhook_NAME]."""
    return type(f"WebhookConfig_{name}", (WebhookConfig,), {"section": f"notify_webhook_{name}"})


SIGNING_KEY_ENV = "MLPIPE_SIGNING_KEY"


class SigningConfig(Section):
    """The key that signs model manifests and candidate metadata (pipeline.signing), the older
    keys still accepted, and what becomes of a model saved by other library versions."""
    section = "signing"
    key_file = luigi.Parameter(
        default="", significant=False,
        description=f"File holding the signing key (mode 0600, outside the storage root); ${SIGNING_KEY_ENV} "
                    "(the key itself) overrides it; empty: ~/.config/mlpipe/signing.key, made on first use")
    accepted_keys = luigi.ListParameter(
        default=[], significant=False,
        description="Files of earlier keys whose signatures are still accepted (key rotation)")
    library_mismatch = luigi.ChoiceParameter(
        choices=LIBRARY_POLICIES, default="warn", var_type=str, significant=False,
        description="A model saved with other scikit-learn, skops or numpy versions than the loader's: warn "
                    "(log both versions, load it) or refuse")


def keyring() -> signing.Keyring:
    """The signing key ($MLPIPE_SIGNING_KEY, else [signing] key_file, else the default file, made
    on first use) and the accepted keys; SignatureError naming the setting when one is unusable."""
    cfg = SigningConfig()
    return _keyring(os.environ.get(SIGNING_KEY_ENV, ""), cfg.key_file, tuple(cfg.accepted_keys), get_storage().root)


@functools.lru_cache(maxsize=4)
def _keyring(secret: str, key_file: str, accepted: tuple[str, ...], root: str) -> signing.Keyring:
    key_file, accepted = os.path.expanduser(key_file) if key_file else "", [os.path.expanduser(p) for p in accepted]
    default = "" if secret or key_file else signing.default_key_file()  # made on first use
    for path in filter(None, (key_file, default, *accepted)):
        signing.check_outside(path, root)
    if secret:
        key = signing.key_from_text(secret, f"${SIGNING_KEY_ENV}")
    else:
        key = signing.read_key_file(key_file) if key_file else signing.create_key_file(default)
    return signing.Keyring(key, tuple(signing.read_key_file(p) for p in accepted))


def model_registry(store: Storage | None = None) -> registry.Registry:
    """The model registry of the storage root, with the signing keys (read when first needed)."""
    return registry.Registry(store or get_storage(), keyring, SigningConfig().library_mismatch)
