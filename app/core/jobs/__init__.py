"""The jobs layer: every kind of job Sprout runs, declared once and run the same way.

Start here. `registry.py` holds the job kinds (`JobKind`: parameters, queue, checks, run
function, progress measure); `lifecycle.py` claims, heartbeats, cancels and finishes a job
of any kind, making a succeeded job's follow-up jobs (`outcome.py`) as it finishes;
`dispatch.py` is what follows a job's end (its webhooks, its follow-ups sent to a
dispatcher: Celery in the workers and the API, in-process in the CLI); `requests.py` turns
a request from any shell into a stored job;
`generation.py` is what the generation kinds share (model servers, resume, batched
commits). One module per kind registers it:

* `self_instruct.py` — Self-Instruct on a seed set;
* `evol_instruct.py` — Evol-Instruct on a seed set or a finished generation job;
* `sft.py` — supervised fine-tuning on a job's curated data, an export or a dataset version;
* `dataset_build.py` — a dataset's recipe run as step jobs, committing its next version;
* `version_handoff.py` — a new version's webhook, deliveries and gated training run;
* `magpie.py` — Magpie: queries an aligned model writes from its own chat template;
* `score.py` — an LLM judge's quality and complexity scores for a finished job's examples
  (`judging.py`: the scoring driver it shares with the generation kinds' `score_with_judge`).

Importing this package registers the kinds; a new kind is a new module plus one import
line below.
"""

from app.core.jobs import (  # noqa: F401  (each registers its kind)
    dataset_build,
    evol_instruct,
    magpie,
    persona,
    score,
    self_instruct,
    sft,
    topic_tree,
    version_handoff,
)
from app.core.jobs.registry import JobKind, JobRequest, JobRequestError, Progress, get, names, queues, register

__all__ = ["JobKind", "JobRequest", "JobRequestError", "Progress", "get", "names", "queues", "register"]
