"""Error replies (docs/dax-protocol.md §Error replies) and the mapping from DynamoDB's error codes.

An error reply is three CBOR items: a code path (never the one-element ``[4]``, which makes the
client's exception code a dict), a text message, and ``[requestId, dynamoErrorCode, httpStatus,
cancellationReasons?]``. The client names the exception from the code path and falls back to
``dynamoErrorCode`` when the path is not in its table.
"""

from __future__ import annotations

from . import cbor

_DDB = (4, 37, 38, 39)

# DynamoDB error code -> DAX code path the client maps back to the same name.
CODE_PATHS: dict[str, tuple[int, ...]] = {
    "ProvisionedThroughputExceededException": _DDB + (40,),
    "ResourceNotFoundException": _DDB + (41,),
    "ConditionalCheckFailedException": _DDB + (43,),
    "ResourceInUseException": _DDB + (45,),
    "ValidationException": _DDB + (46,),
    "InternalServerError": _DDB + (47,),
    "InternalServerErrorException": _DDB + (47,),
    "ItemCollectionSizeLimitExceededException": _DDB + (48,),
    "LimitExceededException": _DDB + (49,),
    "ThrottlingException": _DDB + (50,),
    "TransactionCanceledException": _DDB + (58,),
    "RequestLimitExceeded": _DDB + (61,),
    "AccessDeniedException": (4, 37, 38, 42),
    # Unknown to the Python client's table, so it falls back to the text code; the Go client's numbers.
    "TransactionConflictException": _DDB + (57,),
    "TransactionInProgressException": _DDB + (59,),
    "IdempotentParameterMismatchException": _DDB + (60,),
}
TABLE_NOT_FOUND = (4, 23, 24)
INTERNAL = (3, 37, 54)
THROTTLING_CODES = {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"}


class DaxError(Exception):
    """An error to send to the client instead of a result."""

    def __init__(self, message: str, *, ddb_code: str | None = None, codes: tuple[int, ...] | None = None,
                 http_status: int = 400, request_id: str | None = None,
                 cancellation_reasons: list | None = None) -> None:
        super().__init__(message)
        self.message = message or ddb_code or "error"
        self.ddb_code = ddb_code
        # Unmapped DynamoDB codes still get a multi-element client-error path; the text code names them.
        self.codes = codes or CODE_PATHS.get(ddb_code or "", _DDB + (46,) if ddb_code is None else _DDB + (0,))
        self.http_status = http_status
        self.request_id = request_id
        self.cancellation_reasons = cancellation_reasons

    @property
    def is_fault(self) -> bool:
        return self.http_status >= 500

    def encode(self) -> bytes:
        enc = cbor.Encoder()
        enc.value(list(self.codes))
        enc.text(self.message)
        detail: list = [self.request_id, self.ddb_code, self.http_status]
        if self.cancellation_reasons is not None:
            detail.append(self.cancellation_reasons)
        enc.value(detail)
        return bytes(enc)


def validation(message: str) -> DaxError:
    return DaxError(message, ddb_code="ValidationException")


def internal(message: str) -> DaxError:
    return DaxError(message, ddb_code="InternalServerErrorException", codes=INTERNAL, http_status=500)
