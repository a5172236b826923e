"""Hand-off to a training pipeline: the files trainers read, checked, carded and delivered.

Every piece works on a *row source* — an iterable of row dicts (`id`, `instruction`,
`input`, `output`, optional `system` and provenance keys `method`, `job_id`, `lineage`,
`scores`) — and a `HandoffMeta` describing where the rows came from. A job is one source
(`sources.job_source`); a dataset version is the other (`sources.dataset_version_source`).

    rows + meta ─► bundle.write_bundle ─► formats (one streamed pass, every format at once)
                                          + preflight (chat template, loss mask, max_length)
                                          + dataset_info.json / axolotl.yaml + README.md card
                ─► deliveries.deliver ──► destinations (a folder, the Hugging Face Hub)
                                          recorded, retried with backoff (`retry.retry_due`)
                ─► webhooks.emit ───────► signed POSTs, recorded, retried

`gate.compare_runs` is the pure comparison a train-on-new-version gate promotes by.
"""
