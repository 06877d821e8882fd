"""Every `reason` a dead letter (`videos.deadletter`, `webhooks.deadletter`) can carry, with what it means.

The code raises these as strings (`DecodeError("too_long", ...)`, `PermanentError(..., reason=...)`,
`Rejected(raw, "bad_keyframe", ...)`); this is the one list of them. `tests/unit/common/test_reasons.py`
scans the stages' code and fails for a reason raised there that is not listed here, and for one listed
here that nothing raises any more. "Transient" ones end as a dead letter only after the bounded retries.
"""

from __future__ import annotations

DEAD_LETTER_REASONS: dict[str, str] = {
    # any stage (services/common/kafka/processor.py, the enricher, the webhooks dispatcher)
    "malformed_message": "the record is not JSON or breaks its topic's contract (`TOPIC_MODELS`)",
    "internal_error": "an exception no rule anticipated; the detail names its type",
    "kafka_unavailable": "transient: a Kafka write was not confirmed (services/common/kafka/publisher.py)",
    # the error tree's families, where a raise names no reason of its own (services/common/errors.py)
    "error": "a `ClipstreamError` raised without a reason",
    "unavailable": "transient: a dependency failed and named no reason of its own",
    "rejected": "a `PermanentError` raised without a reason",
    "bad_request": "the input is unusable as sent (`InvalidRequest` without a reason)",
    "not_found": "the thing the message names does not exist (`NotFound` without a reason)",
    "conflict": "the message contradicts the current state (`Conflict` without a reason)",
    "unsupported_media_type": "a media type the stage cannot read (`UnsupportedMediaType`)",
    "misconfigured": "the service's own state can never serve the message (e.g. a webhook key it lacks)",
    # sources (services/media/sources.py): the decoder, QC references
    "source_not_allowed": "the URI is outside the configured allowlists (roots, HTTP and S3 prefixes)",
    "source_not_found": "the source does not exist (no such file, HTTP 404/410)",
    "source_unreadable": "the source cannot be read by ranges (no byte-range support, a bad range answer)",
    "source_unreachable": "transient: the source's server could not be reached",
    "source_unavailable": "transient: the source's server answered 5xx, 408 or 429",
    "bad_uri": "the URI cannot be resolved or holds white space or control characters",
    "empty_file": "the source holds no bytes",
    "too_large": "the source (or a QC reference) is larger than the byte limit",
    # decoding (services/media/decode.py, isolated.py)
    "not_a_video": "not a media file FFmpeg can read, or a still image",
    "no_video_stream": "the file has no video stream",
    "unsupported_codec": "no decoder for the video stream's codec",
    "corrupt_video": "no frame, or not every frame, could be decoded",
    "truncated_video": "the MP4 index is missing, or frames stop well before the declared duration",
    "too_many_pixels": "the picture (as displayed) is over the pixel limit",
    "too_long": "the video is longer than the duration limit",
    "bad_aspect_ratio": "the picture (as displayed) is longer than the aspect-ratio limit",
    "format_not_allowed": "a container that opens further files (playlists, concat lists, image sequences)",
    "decode_timeout": "decoding ran past its time budget and was killed",
    "too_much_memory": "decoding needed more memory than the decoder's limit",
    "decoder_crashed": "transient: the decoding child process died (crash, memory or a signal)",
    # images (services/media/images.py): QC references
    "bad_image": "not a readable image, or one longer than the image aspect limit",
    "image_too_large": "an image over the pixel or side limit",
    # embedder
    "bad_keyframe": "a segment's keyframe is not a decodable image",
    "bad_face": "a segment names a face on no keyframe of its own",
    "triton_unavailable": "transient: Triton did not answer, or answered without an embedding",
    "model_mismatch": "the served model does not match the collection the embedding is routed to",
    # indexer (services/common/vectors/)
    "milvus_rejected": "Milvus refused the rows as invalid data",
    "milvus_unavailable": "transient: Milvus failed in a way that may pass",
    "field_too_long": "a row's text is over its column's UTF-8 byte capacity",
    "patch_too_large": "a metadata patch would make a row's metadata too large",
    # near-duplicates and QC (consumers of videos.indexed: the upload stays indexed)
    "unknown_collection": "the indexed event names a collection that does not exist",
    "bad_qc_input": "QC: the video's QC metadata can never be checked as it is",
    "empty_prompt": "QC: the video's prompt is empty",
    "prompt_too_long": "QC: the video's prompt is over the character limit",
    "too_many_references": "QC: more reference images than the limit",
    # object-store notifications (services/gateway/notifications.py)
    "malformed_notification": "an object-store event that cannot be read",
    "unusable_object": "a readable event about an object that cannot become an upload (its key breaks a limit)",
    # webhook deliveries (webhooks.deadletter; services/webhooks/delivery.py)
    "retries_exhausted": "the receiver kept failing transiently for every attempt",
    "receiver_gone": "the receiver answered 410 Gone",
    "redirect_refused": "the receiver answered with a redirect, which is never followed",
    "receiver_rejected": "the receiver refused the delivery with a 4xx",
    "url_not_allowed": "the endpoint's URL is no longer under the allowed prefixes",
    "endpoint_backlog_full": "too many deliveries already pending for the endpoint",
    "secret_unreadable": "the endpoint's secret does not decrypt with this replica's keys",
}
