"""Failure classification, the heart of "never stop a partition": every branch that decides retry, dead
letter or reconnect, each checked at its boundary.

The stage loop runs for real (`TransactionalProcessor._process`) over an in-memory stand-in for the two
confluent-kafka clients, so what is asserted is what a broker would have been sent: the dead letters, their
reasons and attempt histories, the offsets committed and the seeks that replay a batch.
"""

from __future__ import annotations

import pickle
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from pydantic import BaseModel
from pymilvus import MilvusException
from pymilvus.exceptions import (
    DataNotMatchException,
    DataTypeNotMatchException,
    DataTypeNotSupportException,
    FieldsTypeException,
    FieldTypeException,
    ParamError,
    PrimaryKeyException,
)

from services.common.errors import ClipstreamError, Misconfigured, NotFound, PermanentError, TransientError
from services.common.kafka.codec import encode
from services.common.kafka.processor import (
    Outgoing,
    ProcessorConfig,
    Received,
    Result,
    TransactionalProcessor,
    _Reconnect,
)
from services.common.messages import DeadLetter, Topics
from services.common.retry import RetryPolicy
from services.common.settings import CommonSettings
from services.common.triton import ClipClient
from services.common.vectors.errors import classify, released_collection
from services.media.errors import DecodeError, SourceUnavailable
from tests.kafka_records import Record

# --- the error tree ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        TransientError("Triton is down", reason="triton_unavailable"),
        PermanentError("bad rows", reason="milvus_rejected"),
        NotFound("no such video"),
        Misconfigured("model mismatch"),
        DecodeError("corrupt_video", "moov atom missing"),
        SourceUnavailable("source_unavailable", "HTTP 503"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_an_error_crosses_a_process_boundary_with_its_family_reason_and_detail(error: ClipstreamError) -> None:
    """Decoding runs in a child process: a rebuilt error that lost its class or reason would turn a retry into
    a dead letter (or the reverse) on the way back."""
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is type(error)
    assert (again.reason, again.detail, str(again)) == (error.reason, error.detail, str(error))


def test_a_given_reason_replaces_the_family_default_and_none_keeps_it() -> None:
    assert TransientError("x").reason == TransientError.reason != TransientError("x", reason="kafka_down").reason
    assert str(PermanentError("detail here", reason="too_long")) == "too_long: detail here"


# --- Milvus -----------------------------------------------------------------------------------------------

# what the server says about the data itself: legacy common.proto ErrorCode IllegalArgument (5) and
# IllegalDimension (6), 2.3+ merr ParameterInvalid (1100) and ParameterMissing (1101)
INVALID_DATA_CODES = [5, 6, 1100, 1101]
# what a retry can fix: unexpected (pymilvus's default code), service unavailable, rate limited, collection
# not found (not yet created after a restart) and not loaded (released)
RETRYABLE_CODES = [1, 2, 8, 100, 101]
CLIENT_SIDE_REFUSALS = [
    ParamError,
    DataNotMatchException,
    DataTypeNotMatchException,
    DataTypeNotSupportException,
    FieldsTypeException,
    FieldTypeException,
    PrimaryKeyException,
]


@pytest.mark.parametrize("code", INVALID_DATA_CODES)
def test_milvus_codes_for_invalid_data_are_permanent(code: int) -> None:
    error = classify(MilvusException(code=code, message="length of varchar field title exceeds max length"))
    assert isinstance(error, PermanentError) and not isinstance(error, TransientError)
    assert error.reason == "milvus_rejected"
    assert "exceeds max length" in error.detail


@pytest.mark.parametrize("code", RETRYABLE_CODES)
def test_other_milvus_codes_are_transient(code: int) -> None:
    error = classify(MilvusException(code=code, message="service unavailable"))
    assert isinstance(error, TransientError)
    assert error.reason == "milvus_unavailable"
    assert "service unavailable" in error.detail


@pytest.mark.parametrize("kind", CLIENT_SIDE_REFUSALS, ids=lambda k: k.__name__)
@pytest.mark.parametrize("code", [None, *RETRYABLE_CODES])
def test_a_client_side_refusal_is_permanent_whatever_code_it_carries(kind: type[MilvusException], code: int) -> None:
    """pymilvus refuses rows before sending them (a wrong type, a missing field): its exception type alone
    decides, even when its code is one a retry could fix."""
    raised = kind(message="the field is missing") if code is None else kind(code=code, message="the field is missing")
    assert isinstance(classify(raised), PermanentError)


def test_a_released_collection_is_named_from_its_code_or_its_message() -> None:
    released = MilvusException(code=101, message="collection 'clip_segments_v1' is in state 'released'")
    assert released_collection(released) == "clip_segments_v1"
    assert released_collection(MilvusException(code=1, message="collection not loaded")) == ""
    assert released_collection(MilvusException(code=101, message="call load first")) == ""
    assert released_collection(MilvusException(code=100, message="collection not found")) is None


# --- Triton -----------------------------------------------------------------------------------------------


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_triton_unreachable_is_transient(transport: str) -> None:
    """A Triton that is not there is an outage to wait out, never a reason to dead-letter the keyframes."""
    client = ClipClient(f"127.0.0.1:{_closed_port()}", timeout_s=10, transport=transport)  # type: ignore[arg-type]
    try:
        assert not client.ready()
        with pytest.raises(TransientError) as err:
            client.embed_texts(["a street"])
        assert err.value.reason == "triton_unavailable"
    finally:
        client.close()


def test_triton_that_never_answers_is_transient() -> None:
    """A server that accepts the connection and then says nothing (hung, overloaded) runs past the request's
    deadline: an outage, not a verdict on the keyframes."""
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        client = ClipClient(f"127.0.0.1:{server.getsockname()[1]}", timeout_s=1.0, transport="grpc")
        try:
            with pytest.raises(TransientError) as err:
                client.embed_texts(["a street"])
            assert err.value.reason == "triton_unavailable"
        finally:
            client.close()


def test_triton_answering_with_an_error_is_transient() -> None:
    """Over HTTP the client raises Triton's own error (not an OSError) when the server answers with one."""
    import http.server

    class Overloaded(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = b'{"error": "model clip_text is not ready"}'
            self.send_response(503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Overloaded)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = ClipClient(f"127.0.0.1:{server.server_address[1]}", timeout_s=5, transport="http")
    try:
        assert not client.ready()
        with pytest.raises(TransientError) as err:
            client.embed_texts(["a street"])
        assert err.value.reason == "triton_unavailable" and "not ready" in err.value.detail
    finally:
        client.close()
        server.shutdown()
        server.server_close()


# --- the stage loop ---------------------------------------------------------------------------------------


class Item(BaseModel):
    n: int


def item(offset: int, n: int | None = None, partition: int = 0) -> Record:
    return Record(offset, encode(Item(n=offset if n is None else n)), partition)


@dataclass
class Clients:
    """Both confluent-kafka clients of a stage, in memory: what a transaction made visible, what was rewound."""

    visible: list[tuple[str, bytes]] = field(default_factory=list)
    committed: list[tuple[str, int, int]] = field(default_factory=list)
    seeks: list[tuple[str, int, int]] = field(default_factory=list)
    aborts: int = 0
    commit_calls: int = 0
    commit_errors: list[KafkaException] = field(default_factory=list)
    _open: list[tuple[str, bytes]] = field(default_factory=list)
    _offsets: list[TopicPartition] = field(default_factory=list)

    # producer
    def begin_transaction(self) -> None:
        self._open, self._offsets = [], []

    def produce(self, topic: str, key: bytes, value: bytes, headers: object) -> None:
        self._open.append((topic, value))

    def send_offsets_to_transaction(self, offsets: list[TopicPartition], _meta: object, _timeout: float) -> None:
        self._offsets = offsets

    def commit_transaction(self, _timeout: float) -> None:
        self.commit_calls += 1
        if self.commit_errors:
            raise self.commit_errors.pop(0)
        self.visible += self._open
        self.committed += [(tp.topic, tp.partition, tp.offset) for tp in self._offsets]

    def abort_transaction(self, _timeout: float) -> None:
        self.aborts += 1
        self._open, self._offsets = [], []

    # consumer
    def seek(self, tp: TopicPartition) -> None:
        self.seeks.append((tp.topic, tp.partition, tp.offset))

    def consumer_group_metadata(self) -> object:
        return object()

    def dead_letters(self) -> list[DeadLetter]:
        return [DeadLetter.model_validate_json(v) for t, v in self.visible if t == Topics.DEAD_LETTER]

    def outputs(self) -> list[int]:
        return [Item.model_validate_json(v).n for t, v in self.visible if t == "out"]


class Stage:
    """A processor whose handler raises what each test scripts, wired to in-memory clients."""

    def __init__(self, max_attempts: int = 3, dependencies_up: bool | None = None) -> None:
        self.failure: BaseException | None = None  # raised for every batch while set
        self.fails_on: set[int] = set()  # raised only for batches holding one of these items
        self.calls: list[list[int]] = []
        self.up = dependencies_up
        config = ProcessorConfig(
            service="stage",
            group_id="g",
            input_topic="in",
            max_batch=8,
            retry=RetryPolicy(max_attempts=max_attempts, backoff_initial_s=0.0, backoff_max_s=0.0),
        )
        ready = (lambda: bool(self.up)) if dependencies_up is not None else None
        self.processor: TransactionalProcessor[Item] = TransactionalProcessor(
            CommonSettings(), config, Item, self._handle, dependencies_ready=ready
        )
        self.clients = Clients()
        self.processor._consumer = self.clients  # type: ignore[assignment]
        self.processor._producer = self.clients  # type: ignore[assignment]

    def _handle(self, batch: list[Received[Item]]) -> Sequence[Result]:
        numbers = [r.value.n for r in batch]
        self.calls.append(numbers)
        if self.failure is not None and (not self.fails_on or self.fails_on & set(numbers)):
            raise self.failure
        return [Outgoing("out", r.value, key=str(r.value.n)) for r in batch]

    def feed(self, *records: Record) -> None:
        self.processor._process(list(records), threading.Event())  # type: ignore[arg-type]


def transient() -> TransientError:
    return TransientError("Triton is down", reason="triton_unavailable")


@pytest.mark.parametrize("max_attempts", [1, 3])
def test_a_transient_failure_is_retried_until_its_last_attempt_then_dead_lettered(max_attempts: int) -> None:
    stage = Stage(max_attempts=max_attempts)
    stage.failure = transient()
    for attempt in range(1, max_attempts):
        stage.feed(item(7))
        assert stage.clients.dead_letters() == [] and stage.clients.committed == [], f"gave up at {attempt}"
        assert stage.clients.seeks == [("in", 0, 7)] * attempt, "a failed batch is replayed from its first offset"
    stage.feed(item(7))  # the last attempt
    [letter] = stage.clients.dead_letters()
    assert (letter.reason, letter.source_offset, letter.service) == ("triton_unavailable", 7, "stage")
    assert len(letter.attempts) == max_attempts and all("triton_unavailable" in a for a in letter.attempts)
    assert letter.detail.startswith(f"gave up after {max_attempts} attempts")
    assert stage.clients.committed == [("in", 0, 8)], "the partition moves on past the dead letter"
    assert stage.clients.outputs() == []


def test_attempts_are_counted_per_message_and_forgotten_once_it_succeeds() -> None:
    stage = Stage(max_attempts=3)
    stage.failure = transient()
    stage.feed(item(1))
    stage.feed(item(1))
    stage.failure = None
    stage.feed(item(1))
    assert stage.clients.outputs() == [1]
    stage.failure = transient()  # the same offset again (a rebalance replays it): a fresh budget
    stage.feed(item(1))
    stage.feed(item(1))
    assert stage.clients.dead_letters() == []
    stage.feed(item(1))
    assert [len(d.attempts) for d in stage.clients.dead_letters()] == [3]


def test_failures_while_the_dependencies_are_down_spend_no_attempts() -> None:
    """An outage is waited out (not ready meanwhile), not turned into dead letters; once the dependencies are
    back, a message that keeps failing gets its full budget and no more."""
    stage = Stage(max_attempts=2, dependencies_up=False)
    stage.failure = transient()
    for _ in range(5):
        stage.feed(item(3))
    assert stage.clients.dead_letters() == [] and not stage.processor.ready()
    stage.up = True
    stage.feed(item(3))
    assert stage.clients.dead_letters() == []
    stage.feed(item(3))
    [letter] = stage.clients.dead_letters()
    assert len(letter.attempts) == 2


def test_a_permanent_failure_is_dead_lettered_at_once_with_its_own_reason() -> None:
    stage = Stage(max_attempts=5)
    stage.failure = DecodeError("corrupt_video", "invalid NAL unit")
    stage.feed(item(4))
    [letter] = stage.clients.dead_letters()
    assert (letter.reason, letter.detail, letter.attempts) == ("corrupt_video", "invalid NAL unit", [])
    assert stage.clients.seeks == [] and stage.clients.committed == [("in", 0, 5)]


class ForeignError(Exception):
    """An exception from outside our tree that happens to carry a `reason` of its own (as HTTP and gRPC errors
    do): it says nothing an operator can count on, so it must not become the dead letter's class."""

    reason = "Bad Gateway"


@pytest.mark.parametrize(
    "failure", [ValueError("the model said no"), ForeignError("upstream")], ids=["plain", "foreign"]
)
def test_an_unexpected_exception_is_dead_lettered_as_internal_error(failure: Exception) -> None:
    stage = Stage()
    stage.failure = failure
    stage.feed(item(9))
    [letter] = stage.clients.dead_letters()
    assert letter.reason == "internal_error"
    assert type(failure).__name__ in letter.detail and str(failure) in letter.detail
    assert stage.clients.committed == [("in", 0, 10)]


@pytest.mark.parametrize(
    "failure",
    [ValueError("bad item"), PermanentError("bad item", reason="field_too_long")],
    ids=["unexpected", "permanent"],
)
def test_a_failing_message_in_a_batch_is_pinned_on_it_and_the_others_go_on(failure: Exception) -> None:
    stage = Stage()
    stage.failure, stage.fails_on = failure, {2}
    stage.feed(item(1), item(2), item(3))
    assert stage.calls == [[1, 2, 3], [1], [2], [3]], "the batch is handled again one message at a time"
    assert stage.clients.outputs() == [1, 3]
    [letter] = stage.clients.dead_letters()
    assert letter.source_offset == 2
    assert letter.reason == getattr(failure, "reason", "internal_error")
    assert stage.clients.committed == [("in", 0, 4)]


def test_a_transient_failure_met_while_splitting_replays_the_whole_batch() -> None:
    stage = Stage()
    stage.failure, stage.fails_on = transient(), {2}
    stage.feed(item(1), item(2), item(3))
    assert stage.clients.visible == [] and stage.clients.seeks == [("in", 0, 1)]


def test_a_malformed_message_is_dead_lettered_alone_and_keeps_its_reason_when_the_batch_gives_up() -> None:
    stage = Stage(max_attempts=1)
    stage.feed(item(1), Record(2, b'{"n": "not a number"}'), Record(3, None))
    assert stage.clients.outputs() == [1]
    assert sorted((d.source_offset, d.reason) for d in stage.clients.dead_letters()) == [
        (2, "malformed_message"),
        (3, "malformed_message"),
    ]
    stage.failure = transient()
    stage.feed(item(4), Record(5, b"{not json"))
    assert sorted((d.source_offset, d.reason) for d in stage.clients.dead_letters()[2:]) == [
        (4, "triton_unavailable"),
        (5, "malformed_message"),
    ]


# --- Kafka failing under the stage ------------------------------------------------------------------------


def _kafka(code: int, **kind: bool) -> KafkaException:
    return KafkaException(KafkaError(code, "broker said no", **kind))


def test_an_abortable_commit_aborts_and_replays_the_batch_without_spending_an_attempt() -> None:
    stage = Stage(max_attempts=1)
    stage.clients.commit_errors = [_kafka(KafkaError._STATE, txn_requires_abort=True)]
    stage.feed(item(5))
    assert stage.clients.aborts == 1 and stage.clients.visible == [] and stage.clients.seeks == [("in", 0, 5)]
    stage.feed(item(5))
    assert stage.clients.outputs() == [5] and stage.clients.dead_letters() == []


def test_a_retriable_commit_is_retried_in_the_same_transaction() -> None:
    stage = Stage()
    stage.clients.commit_errors = [_kafka(KafkaError._TIMED_OUT, retriable=True)]
    stage.feed(item(6))
    assert stage.clients.commit_calls == 2 and stage.clients.aborts == 0
    assert stage.clients.outputs() == [6] and stage.clients.committed == [("in", 0, 7)]


@pytest.mark.parametrize("commit_attempts", [1, 3, 5])
def test_a_retriable_commit_is_tried_as_often_as_the_retry_policy_says(commit_attempts: int) -> None:
    stage = Stage()
    stage.processor.config.retry = RetryPolicy(commit_attempts=commit_attempts)
    stage.clients.commit_errors = [_kafka(KafkaError._TIMED_OUT, retriable=True) for _ in range(10)]
    with pytest.raises(_Reconnect):
        stage.feed(item(9))
    assert stage.clients.commit_calls == commit_attempts


@pytest.mark.parametrize(
    "kind", [{"fatal": True}, {}, {"retriable": True}], ids=["fatal", "unknown", "retriable-until-it-gives-up"]
)
def test_a_commit_that_cannot_be_aborted_rebuilds_the_clients(kind: dict[str, bool]) -> None:
    """Fenced, or a failure that is neither abortable nor ever succeeds: new clients resume from the committed
    offsets (the batch is replayed by the group), never a dead letter."""
    stage = Stage()
    stage.clients.commit_errors = [_kafka(KafkaError._FENCED, **kind) for _ in range(10)]
    with pytest.raises(_Reconnect):
        stage.feed(item(8))
    assert stage.clients.visible == [] and stage.clients.committed == []
    if kind.get("retriable"):
        assert 1 < stage.clients.commit_calls < 10, "retried, but not forever"
    else:
        assert stage.clients.commit_calls == 1, "only a retriable error is worth committing again"
