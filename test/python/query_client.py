"""Lists jobs and checkpoints of a ckpt coordinator through CheckpointQuery.

Uses only Debian's python3-grpcio and python3-protobuf, with stubs that
protoc generated from proto/. Prints one JSON document on stdout.

usage: query_client.py STUBS_DIR ADDRESS JOB_ID

TLS and credentials come from the environment variables the CLI and the
TypeScript SDK read: CKPT_TLS_CA (TLS, checking the coordinator against
that CA), CKPT_TLS_CLIENT_CERT and CKPT_TLS_CLIENT_KEY (mutual TLS),
CKPT_TLS_SERVER_NAME (the name the certificate must be valid for) and
CKPT_AUTH_TOKEN (sent as "authorization: Bearer <token>").
"""
import json
import os
import sys

sys.path.insert(0, sys.argv[1])

import grpc  # noqa: E402
from ckpt.v1 import query_pb2, query_pb2_grpc  # noqa: E402
from ckpt.v1 import coordinator_pb2, coordinator_pb2_grpc, types_pb2  # noqa: E402


def read(name: str):
    path = os.environ.get(name)
    if not path:
        return None
    with open(path, "rb") as f:
        return f.read()


def channel_to(address: str) -> grpc.Channel:
    token = os.environ.get("CKPT_AUTH_TOKEN")
    ca = read("CKPT_TLS_CA")
    if ca is None:
        if token:
            raise SystemExit("CKPT_AUTH_TOKEN without TLS: grpcio sends tokens only over TLS")
        return grpc.insecure_channel(address)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca,
        private_key=read("CKPT_TLS_CLIENT_KEY"),
        certificate_chain=read("CKPT_TLS_CLIENT_CERT"),
    )
    if token:
        credentials = grpc.composite_channel_credentials(credentials, grpc.access_token_call_credentials(token))
    name = os.environ.get("CKPT_TLS_SERVER_NAME")
    options = [("grpc.ssl_target_name_override", name)] if name else []
    return grpc.secure_channel(address, credentials, options=options)


def main() -> None:
    address, job_id = sys.argv[2], sys.argv[3]
    with channel_to(address) as channel:
        query = query_pb2_grpc.CheckpointQueryStub(channel)
        jobs = query.ListJobs(query_pb2.ListJobsRequest(page_size=10), timeout=10)
        checkpoints = []
        token = ""
        while True:
            page = query.ListCheckpoints(
                query_pb2.ListCheckpointsRequest(job_id=job_id, page_size=2, page_token=token), timeout=10
            )
            checkpoints.extend(page.checkpoints)
            token = page.next_page_token
            if not token:
                break
        newest = checkpoints[0]
        detail = query.GetCheckpoint(
            query_pb2.GetCheckpointRequest(job_id=job_id, checkpoint_id=newest.checkpoint_id), timeout=10
        )
        coordinator = coordinator_pb2_grpc.CoordinatorStub(channel)
        try:
            coordinator.GetJob(coordinator_pb2.GetJobRequest(job_id="no-such-job"), timeout=10)
            unknown = None
        except grpc.RpcError as err:
            trailers = dict(err.trailing_metadata() or ())
            unknown = {"code": err.code().name, "reason": trailers.get("ckpt-reason")}
        print(
            json.dumps(
                {
                    "jobs": [j.spec.job_id for j in jobs.jobs],
                    "checkpoints": [
                        {"id": c.checkpoint_id, "state": types_pb2.CheckpointState.Name(c.state)}
                        for c in checkpoints
                    ],
                    "manifest_tasks": [t.task_id for t in detail.manifest.tasks],
                    "manifest_positions": {
                        t.task_id: [[p.input, p.offset] for p in t.positions] for t in detail.manifest.tasks
                    },
                    "unknown_job": unknown,
                }
            )
        )


if __name__ == "__main__":
    main()
