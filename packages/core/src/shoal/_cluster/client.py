"""A small synchronous client of the head service, carrying the cluster token on every call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc

from shoal._cluster.auth import token_metadata
from shoal._cluster.proto import cluster_pb2 as pb
from shoal._cluster.proto import cluster_pb2_grpc as pb_grpc
from shoal.exceptions import AuthenticationError, ShoalSystemError

__all__ = ["HeadClient", "channel_options"]


def channel_options() -> list[tuple[str, Any]]:
    return [
        ("grpc.max_send_message_length", 64 << 20),
        ("grpc.max_receive_message_length", 64 << 20),
        ("grpc.enable_http_proxy", 0),
    ]


class HeadClient:
    """Calls to the head at ``address``; gRPC errors become shoal errors naming the address."""

    def __init__(self, address: str, token: str, timeout: float = 10.0, tls: Path | None = None) -> None:
        from shoal._cluster.tls import open_channel

        self.address = address
        self.timeout = timeout
        self._metadata = token_metadata(token)
        self._channel = open_channel(address, tls)
        self._stub = pb_grpc.HeadStub(self._channel)

    def _call(self, method: str, request: Any, timeout: float | None = None) -> Any:
        try:
            return getattr(self._stub, method)(request, metadata=self._metadata, timeout=timeout or self.timeout)
        except grpc.RpcError as e:
            code = e.code() if hasattr(e, "code") else None
            if code == grpc.StatusCode.UNAUTHENTICATED:
                raise AuthenticationError(f"the head at {self.address} refused the cluster token") from None
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise ShoalSystemError(f"cannot reach the shoal head at {self.address}: {e.details()}") from None
            raise

    def register(self, node: pb.NodeInfo) -> pb.RegisterNodeReply:
        return self._call("RegisterNode", pb.RegisterNodeRequest(node=node))

    def heartbeat(self, node_id: str, available: dict[str, float], demands: list[pb.ResourceDemand]) -> Any:
        return self._call("Heartbeat", pb.HeartbeatRequest(node_id=node_id, available=available, demands=demands), 5)

    def cluster_info(self) -> pb.ClusterInfoReply:
        return self._call("GetClusterInfo", pb.ClusterInfoRequest())

    def kv_put(self, ns: str, key: str, value: bytes, overwrite: bool = True) -> bool:
        return bool(self._call("KVPut", pb.KVRequest(ns=ns, key=key, value=value, overwrite=overwrite)).added)

    def kv_get(self, ns: str, key: str) -> bytes | None:
        reply = self._call("KVGet", pb.KVRequest(ns=ns, key=key))
        return reply.value if reply.found else None

    def kv_delete(self, ns: str, key: str) -> bool:
        return bool(self._call("KVDelete", pb.KVRequest(ns=ns, key=key)).found)

    def kv_keys(self, ns: str, prefix: str = "") -> list[str]:
        return list(self._call("KVKeys", pb.KVRequest(ns=ns, prefix=prefix)).keys)

    def submit_job(self, request: pb.JobSubmitRequest) -> pb.JobInfo:
        return self._call("SubmitJob", request).job

    def get_job(self, submission_id: str) -> pb.JobInfo:
        return self._call("GetJob", pb.JobRequest(submission_id=submission_id)).job

    def list_jobs(self) -> list[pb.JobInfo]:
        return list(self._call("ListJobs", pb.JobRequest()).jobs)

    def job_logs(self, submission_id: str, offset: int = 0) -> tuple[bytes, int]:
        reply = self._call("GetJobLogs", pb.JobRequest(submission_id=submission_id, offset=offset))
        return reply.logs, reply.next_offset

    def stop_job(self, submission_id: str) -> pb.JobInfo:
        return self._call("StopJob", pb.JobRequest(submission_id=submission_id)).job

    def close(self) -> None:
        self._channel.close()
