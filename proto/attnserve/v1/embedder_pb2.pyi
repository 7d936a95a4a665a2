from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DTYPE_UNSPECIFIED: _ClassVar[DType]
    DTYPE_FLOAT32: _ClassVar[DType]
    DTYPE_FLOAT16: _ClassVar[DType]

class Truncate(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRUNCATE_UNSPECIFIED: _ClassVar[Truncate]
    TRUNCATE_END: _ClassVar[Truncate]
    TRUNCATE_START: _ClassVar[Truncate]
    TRUNCATE_NONE: _ClassVar[Truncate]

class HeadAggregation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HEAD_AGGREGATION_UNSPECIFIED: _ClassVar[HeadAggregation]
    HEAD_AGGREGATION_NONE: _ClassVar[HeadAggregation]
    HEAD_AGGREGATION_MEAN: _ClassVar[HeadAggregation]

class InputType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INPUT_TYPE_UNSPECIFIED: _ClassVar[InputType]
    INPUT_TYPE_DOCUMENT: _ClassVar[InputType]
    INPUT_TYPE_QUERY: _ClassVar[InputType]
DTYPE_UNSPECIFIED: DType
DTYPE_FLOAT32: DType
DTYPE_FLOAT16: DType
TRUNCATE_UNSPECIFIED: Truncate
TRUNCATE_END: Truncate
TRUNCATE_START: Truncate
TRUNCATE_NONE: Truncate
HEAD_AGGREGATION_UNSPECIFIED: HeadAggregation
HEAD_AGGREGATION_NONE: HeadAggregation
HEAD_AGGREGATION_MEAN: HeadAggregation
INPUT_TYPE_UNSPECIFIED: InputType
INPUT_TYPE_DOCUMENT: InputType
INPUT_TYPE_QUERY: InputType

class Tensor(_message.Message):
    __slots__ = ("dtype", "shape", "data")
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    dtype: DType
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    def __init__(self, dtype: _Optional[_Union[DType, str]] = ..., shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ...) -> None: ...

class AttentionOptions(_message.Message):
    __slots__ = ("enabled", "layers", "heads", "aggregation")
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    HEADS_FIELD_NUMBER: _ClassVar[int]
    AGGREGATION_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    layers: _containers.RepeatedScalarFieldContainer[int]
    heads: _containers.RepeatedScalarFieldContainer[int]
    aggregation: HeadAggregation
    def __init__(self, enabled: _Optional[bool] = ..., layers: _Optional[_Iterable[int]] = ..., heads: _Optional[_Iterable[int]] = ..., aggregation: _Optional[_Union[HeadAggregation, str]] = ...) -> None: ...

class EmbedOptions(_message.Message):
    __slots__ = ("pooled", "token_embeddings", "normalize", "truncate", "attention", "output_dtype", "max_tokens", "dimensions", "prompt_name", "chunking", "chunk_overlap")
    POOLED_FIELD_NUMBER: _ClassVar[int]
    TOKEN_EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    NORMALIZE_FIELD_NUMBER: _ClassVar[int]
    TRUNCATE_FIELD_NUMBER: _ClassVar[int]
    ATTENTION_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_DTYPE_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_NAME_FIELD_NUMBER: _ClassVar[int]
    CHUNKING_FIELD_NUMBER: _ClassVar[int]
    CHUNK_OVERLAP_FIELD_NUMBER: _ClassVar[int]
    pooled: bool
    token_embeddings: bool
    normalize: bool
    truncate: Truncate
    attention: AttentionOptions
    output_dtype: DType
    max_tokens: int
    dimensions: int
    prompt_name: str
    chunking: bool
    chunk_overlap: int
    def __init__(self, pooled: _Optional[bool] = ..., token_embeddings: _Optional[bool] = ..., normalize: _Optional[bool] = ..., truncate: _Optional[_Union[Truncate, str]] = ..., attention: _Optional[_Union[AttentionOptions, _Mapping]] = ..., output_dtype: _Optional[_Union[DType, str]] = ..., max_tokens: _Optional[int] = ..., dimensions: _Optional[int] = ..., prompt_name: _Optional[str] = ..., chunking: _Optional[bool] = ..., chunk_overlap: _Optional[int] = ...) -> None: ...

class EmbedRequest(_message.Message):
    __slots__ = ("texts", "options", "request_id", "model")
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    texts: _containers.RepeatedScalarFieldContainer[str]
    options: EmbedOptions
    request_id: str
    model: str
    def __init__(self, texts: _Optional[_Iterable[str]] = ..., options: _Optional[_Union[EmbedOptions, _Mapping]] = ..., request_id: _Optional[str] = ..., model: _Optional[str] = ...) -> None: ...

class Timings(_message.Message):
    __slots__ = ("queue_ms", "tokenize_ms", "inference_ms", "total_ms")
    QUEUE_MS_FIELD_NUMBER: _ClassVar[int]
    TOKENIZE_MS_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_MS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MS_FIELD_NUMBER: _ClassVar[int]
    queue_ms: float
    tokenize_ms: float
    inference_ms: float
    total_ms: float
    def __init__(self, queue_ms: _Optional[float] = ..., tokenize_ms: _Optional[float] = ..., inference_ms: _Optional[float] = ..., total_ms: _Optional[float] = ...) -> None: ...

class TextResult(_message.Message):
    __slots__ = ("token_count", "truncated", "token_embeddings", "attentions", "prompt_tokens", "windows", "window_tokens")
    TOKEN_COUNT_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    TOKEN_EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    ATTENTIONS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    WINDOWS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    token_count: int
    truncated: bool
    token_embeddings: Tensor
    attentions: Tensor
    prompt_tokens: int
    windows: int
    window_tokens: int
    def __init__(self, token_count: _Optional[int] = ..., truncated: _Optional[bool] = ..., token_embeddings: _Optional[_Union[Tensor, _Mapping]] = ..., attentions: _Optional[_Union[Tensor, _Mapping]] = ..., prompt_tokens: _Optional[int] = ..., windows: _Optional[int] = ..., window_tokens: _Optional[int] = ...) -> None: ...

class EmbedResponse(_message.Message):
    __slots__ = ("request_id", "model", "pooled", "results", "timings", "attention_layers", "attention_heads", "error", "prompt_name")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    POOLED_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    ATTENTION_LAYERS_FIELD_NUMBER: _ClassVar[int]
    ATTENTION_HEADS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    PROMPT_NAME_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    model: str
    pooled: Tensor
    results: _containers.RepeatedCompositeFieldContainer[TextResult]
    timings: Timings
    attention_layers: _containers.RepeatedScalarFieldContainer[int]
    attention_heads: _containers.RepeatedScalarFieldContainer[int]
    error: Error
    prompt_name: str
    def __init__(self, request_id: _Optional[str] = ..., model: _Optional[str] = ..., pooled: _Optional[_Union[Tensor, _Mapping]] = ..., results: _Optional[_Iterable[_Union[TextResult, _Mapping]]] = ..., timings: _Optional[_Union[Timings, _Mapping]] = ..., attention_layers: _Optional[_Iterable[int]] = ..., attention_heads: _Optional[_Iterable[int]] = ..., error: _Optional[_Union[Error, _Mapping]] = ..., prompt_name: _Optional[str] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class TokenizeRequest(_message.Message):
    __slots__ = ("texts", "truncate", "max_tokens", "prompt_name", "model", "counts_only")
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATE_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    COUNTS_ONLY_FIELD_NUMBER: _ClassVar[int]
    texts: _containers.RepeatedScalarFieldContainer[str]
    truncate: Truncate
    max_tokens: int
    prompt_name: str
    model: str
    counts_only: bool
    def __init__(self, texts: _Optional[_Iterable[str]] = ..., truncate: _Optional[_Union[Truncate, str]] = ..., max_tokens: _Optional[int] = ..., prompt_name: _Optional[str] = ..., model: _Optional[str] = ..., counts_only: _Optional[bool] = ...) -> None: ...

class Token(_message.Message):
    __slots__ = ("id", "text", "start", "end", "special", "prompt")
    ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    SPECIAL_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    id: int
    text: str
    start: int
    end: int
    special: bool
    prompt: bool
    def __init__(self, id: _Optional[int] = ..., text: _Optional[str] = ..., start: _Optional[int] = ..., end: _Optional[int] = ..., special: _Optional[bool] = ..., prompt: _Optional[bool] = ...) -> None: ...

class TokenizedText(_message.Message):
    __slots__ = ("tokens", "truncated", "token_count")
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    TOKEN_COUNT_FIELD_NUMBER: _ClassVar[int]
    tokens: _containers.RepeatedCompositeFieldContainer[Token]
    truncated: bool
    token_count: int
    def __init__(self, tokens: _Optional[_Iterable[_Union[Token, _Mapping]]] = ..., truncated: _Optional[bool] = ..., token_count: _Optional[int] = ...) -> None: ...

class TokenizeResponse(_message.Message):
    __slots__ = ("texts", "prompt_name")
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_NAME_FIELD_NUMBER: _ClassVar[int]
    texts: _containers.RepeatedCompositeFieldContainer[TokenizedText]
    prompt_name: str
    def __init__(self, texts: _Optional[_Iterable[_Union[TokenizedText, _Mapping]]] = ..., prompt_name: _Optional[str] = ...) -> None: ...

class InfoRequest(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: str
    def __init__(self, model: _Optional[str] = ...) -> None: ...

class Limits(_message.Message):
    __slots__ = ("max_texts_per_request", "max_chars_per_text", "max_tokens_per_text", "max_attention_elements", "max_receive_message_bytes", "max_send_message_bytes", "max_queue_texts", "max_documents_per_request", "max_document_tokens", "max_late_chunking_documents", "max_chunks_per_document")
    MAX_TEXTS_PER_REQUEST_FIELD_NUMBER: _ClassVar[int]
    MAX_CHARS_PER_TEXT_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_PER_TEXT_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTENTION_ELEMENTS_FIELD_NUMBER: _ClassVar[int]
    MAX_RECEIVE_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_SEND_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_QUEUE_TEXTS_FIELD_NUMBER: _ClassVar[int]
    MAX_DOCUMENTS_PER_REQUEST_FIELD_NUMBER: _ClassVar[int]
    MAX_DOCUMENT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MAX_LATE_CHUNKING_DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    MAX_CHUNKS_PER_DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    max_texts_per_request: int
    max_chars_per_text: int
    max_tokens_per_text: int
    max_attention_elements: int
    max_receive_message_bytes: int
    max_send_message_bytes: int
    max_queue_texts: int
    max_documents_per_request: int
    max_document_tokens: int
    max_late_chunking_documents: int
    max_chunks_per_document: int
    def __init__(self, max_texts_per_request: _Optional[int] = ..., max_chars_per_text: _Optional[int] = ..., max_tokens_per_text: _Optional[int] = ..., max_attention_elements: _Optional[int] = ..., max_receive_message_bytes: _Optional[int] = ..., max_send_message_bytes: _Optional[int] = ..., max_queue_texts: _Optional[int] = ..., max_documents_per_request: _Optional[int] = ..., max_document_tokens: _Optional[int] = ..., max_late_chunking_documents: _Optional[int] = ..., max_chunks_per_document: _Optional[int] = ...) -> None: ...

class InfoResponse(_message.Message):
    __slots__ = ("model_name", "model_source", "hidden_size", "num_layers", "num_heads", "pooling", "normalize", "default_max_tokens", "limits", "precision", "execution_provider", "attention_maps", "artifact_sha256", "server_version", "onnxruntime_version", "prompts", "default_prompt_name", "family", "causal", "model", "models", "tasks", "labels", "chunking", "chunk_overlap")
    class PromptsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_SOURCE_FIELD_NUMBER: _ClassVar[int]
    HIDDEN_SIZE_FIELD_NUMBER: _ClassVar[int]
    NUM_LAYERS_FIELD_NUMBER: _ClassVar[int]
    NUM_HEADS_FIELD_NUMBER: _ClassVar[int]
    POOLING_FIELD_NUMBER: _ClassVar[int]
    NORMALIZE_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_PROVIDER_FIELD_NUMBER: _ClassVar[int]
    ATTENTION_MAPS_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_SHA256_FIELD_NUMBER: _ClassVar[int]
    SERVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    ONNXRUNTIME_VERSION_FIELD_NUMBER: _ClassVar[int]
    PROMPTS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_PROMPT_NAME_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    CAUSAL_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    CHUNKING_FIELD_NUMBER: _ClassVar[int]
    CHUNK_OVERLAP_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_source: str
    hidden_size: int
    num_layers: int
    num_heads: int
    pooling: str
    normalize: bool
    default_max_tokens: int
    limits: Limits
    precision: str
    execution_provider: str
    attention_maps: bool
    artifact_sha256: str
    server_version: str
    onnxruntime_version: str
    prompts: _containers.ScalarMap[str, str]
    default_prompt_name: str
    family: str
    causal: bool
    model: str
    models: _containers.RepeatedScalarFieldContainer[str]
    tasks: _containers.RepeatedScalarFieldContainer[str]
    labels: _containers.RepeatedScalarFieldContainer[str]
    chunking: bool
    chunk_overlap: int
    def __init__(self, model_name: _Optional[str] = ..., model_source: _Optional[str] = ..., hidden_size: _Optional[int] = ..., num_layers: _Optional[int] = ..., num_heads: _Optional[int] = ..., pooling: _Optional[str] = ..., normalize: _Optional[bool] = ..., default_max_tokens: _Optional[int] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., precision: _Optional[str] = ..., execution_provider: _Optional[str] = ..., attention_maps: _Optional[bool] = ..., artifact_sha256: _Optional[str] = ..., server_version: _Optional[str] = ..., onnxruntime_version: _Optional[str] = ..., prompts: _Optional[_Mapping[str, str]] = ..., default_prompt_name: _Optional[str] = ..., family: _Optional[str] = ..., causal: _Optional[bool] = ..., model: _Optional[str] = ..., models: _Optional[_Iterable[str]] = ..., tasks: _Optional[_Iterable[str]] = ..., labels: _Optional[_Iterable[str]] = ..., chunking: _Optional[bool] = ..., chunk_overlap: _Optional[int] = ...) -> None: ...

class RerankRequest(_message.Message):
    __slots__ = ("query", "documents", "top_n", "return_documents", "raw_scores", "truncation", "max_tokens", "request_id", "model", "attention")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    TOP_N_FIELD_NUMBER: _ClassVar[int]
    RETURN_DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    RAW_SCORES_FIELD_NUMBER: _ClassVar[int]
    TRUNCATION_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ATTENTION_FIELD_NUMBER: _ClassVar[int]
    query: str
    documents: _containers.RepeatedScalarFieldContainer[str]
    top_n: int
    return_documents: bool
    raw_scores: bool
    truncation: Truncate
    max_tokens: int
    request_id: str
    model: str
    attention: AttentionOptions
    def __init__(self, query: _Optional[str] = ..., documents: _Optional[_Iterable[str]] = ..., top_n: _Optional[int] = ..., return_documents: _Optional[bool] = ..., raw_scores: _Optional[bool] = ..., truncation: _Optional[_Union[Truncate, str]] = ..., max_tokens: _Optional[int] = ..., request_id: _Optional[str] = ..., model: _Optional[str] = ..., attention: _Optional[_Union[AttentionOptions, _Mapping]] = ...) -> None: ...

class RerankResult(_message.Message):
    __slots__ = ("index", "score", "document", "token_count", "truncated", "attention")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_COUNT_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    ATTENTION_FIELD_NUMBER: _ClassVar[int]
    index: int
    score: float
    document: str
    token_count: int
    truncated: bool
    attention: PairAttention
    def __init__(self, index: _Optional[int] = ..., score: _Optional[float] = ..., document: _Optional[str] = ..., token_count: _Optional[int] = ..., truncated: _Optional[bool] = ..., attention: _Optional[_Union[PairAttention, _Mapping]] = ...) -> None: ...

class RerankResponse(_message.Message):
    __slots__ = ("request_id", "model", "results", "total_tokens", "timings")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    model: str
    results: _containers.RepeatedCompositeFieldContainer[RerankResult]
    total_tokens: int
    timings: Timings
    def __init__(self, request_id: _Optional[str] = ..., model: _Optional[str] = ..., results: _Optional[_Iterable[_Union[RerankResult, _Mapping]]] = ..., total_tokens: _Optional[int] = ..., timings: _Optional[_Union[Timings, _Mapping]] = ...) -> None: ...

class TextPair(_message.Message):
    __slots__ = ("text", "text_pair")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TEXT_PAIR_FIELD_NUMBER: _ClassVar[int]
    text: str
    text_pair: str
    def __init__(self, text: _Optional[str] = ..., text_pair: _Optional[str] = ...) -> None: ...

class ClassifyRequest(_message.Message):
    __slots__ = ("texts", "pairs", "top_k", "raw_scores", "truncation", "max_tokens", "request_id", "model", "attention")
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    PAIRS_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    RAW_SCORES_FIELD_NUMBER: _ClassVar[int]
    TRUNCATION_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ATTENTION_FIELD_NUMBER: _ClassVar[int]
    texts: _containers.RepeatedScalarFieldContainer[str]
    pairs: _containers.RepeatedCompositeFieldContainer[TextPair]
    top_k: int
    raw_scores: bool
    truncation: Truncate
    max_tokens: int
    request_id: str
    model: str
    attention: AttentionOptions
    def __init__(self, texts: _Optional[_Iterable[str]] = ..., pairs: _Optional[_Iterable[_Union[TextPair, _Mapping]]] = ..., top_k: _Optional[int] = ..., raw_scores: _Optional[bool] = ..., truncation: _Optional[_Union[Truncate, str]] = ..., max_tokens: _Optional[int] = ..., request_id: _Optional[str] = ..., model: _Optional[str] = ..., attention: _Optional[_Union[AttentionOptions, _Mapping]] = ...) -> None: ...

class LabelScore(_message.Message):
    __slots__ = ("label", "score")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    label: str
    score: float
    def __init__(self, label: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class Classification(_message.Message):
    __slots__ = ("labels", "token_count", "truncated", "attention")
    LABELS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_COUNT_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    ATTENTION_FIELD_NUMBER: _ClassVar[int]
    labels: _containers.RepeatedCompositeFieldContainer[LabelScore]
    token_count: int
    truncated: bool
    attention: PairAttention
    def __init__(self, labels: _Optional[_Iterable[_Union[LabelScore, _Mapping]]] = ..., token_count: _Optional[int] = ..., truncated: _Optional[bool] = ..., attention: _Optional[_Union[PairAttention, _Mapping]] = ...) -> None: ...

class ClassifyResponse(_message.Message):
    __slots__ = ("request_id", "model", "results", "total_tokens", "timings")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    model: str
    results: _containers.RepeatedCompositeFieldContainer[Classification]
    total_tokens: int
    timings: Timings
    def __init__(self, request_id: _Optional[str] = ..., model: _Optional[str] = ..., results: _Optional[_Iterable[_Union[Classification, _Mapping]]] = ..., total_tokens: _Optional[int] = ..., timings: _Optional[_Union[Timings, _Mapping]] = ...) -> None: ...

class TokenSpan(_message.Message):
    __slots__ = ("start", "end")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    start: int
    end: int
    def __init__(self, start: _Optional[int] = ..., end: _Optional[int] = ...) -> None: ...

class PairAttention(_message.Message):
    __slots__ = ("attentions", "layers", "heads", "segments", "tokens")
    ATTENTIONS_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    HEADS_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    attentions: Tensor
    layers: _containers.RepeatedScalarFieldContainer[int]
    heads: _containers.RepeatedScalarFieldContainer[int]
    segments: _containers.RepeatedCompositeFieldContainer[TokenSpan]
    tokens: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, attentions: _Optional[_Union[Tensor, _Mapping]] = ..., layers: _Optional[_Iterable[int]] = ..., heads: _Optional[_Iterable[int]] = ..., segments: _Optional[_Iterable[_Union[TokenSpan, _Mapping]]] = ..., tokens: _Optional[_Iterable[str]] = ...) -> None: ...

class RerankStreamResponse(_message.Message):
    __slots__ = ("request_id", "response", "error")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    response: RerankResponse
    error: Error
    def __init__(self, request_id: _Optional[str] = ..., response: _Optional[_Union[RerankResponse, _Mapping]] = ..., error: _Optional[_Union[Error, _Mapping]] = ...) -> None: ...

class CharSpan(_message.Message):
    __slots__ = ("start", "end")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    start: int
    end: int
    def __init__(self, start: _Optional[int] = ..., end: _Optional[int] = ...) -> None: ...

class ChunkDocument(_message.Message):
    __slots__ = ("text", "spans", "tokens_per_chunk")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SPANS_FIELD_NUMBER: _ClassVar[int]
    TOKENS_PER_CHUNK_FIELD_NUMBER: _ClassVar[int]
    text: str
    spans: _containers.RepeatedCompositeFieldContainer[CharSpan]
    tokens_per_chunk: int
    def __init__(self, text: _Optional[str] = ..., spans: _Optional[_Iterable[_Union[CharSpan, _Mapping]]] = ..., tokens_per_chunk: _Optional[int] = ...) -> None: ...

class ChunkRequest(_message.Message):
    __slots__ = ("documents", "truncate", "max_tokens", "normalize", "attention", "output_dtype", "prompt_name", "request_id", "model")
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATE_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    NORMALIZE_FIELD_NUMBER: _ClassVar[int]
    ATTENTION_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_DTYPE_FIELD_NUMBER: _ClassVar[int]
    PROMPT_NAME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    documents: _containers.RepeatedCompositeFieldContainer[ChunkDocument]
    truncate: Truncate
    max_tokens: int
    normalize: bool
    attention: AttentionOptions
    output_dtype: DType
    prompt_name: str
    request_id: str
    model: str
    def __init__(self, documents: _Optional[_Iterable[_Union[ChunkDocument, _Mapping]]] = ..., truncate: _Optional[_Union[Truncate, str]] = ..., max_tokens: _Optional[int] = ..., normalize: _Optional[bool] = ..., attention: _Optional[_Union[AttentionOptions, _Mapping]] = ..., output_dtype: _Optional[_Union[DType, str]] = ..., prompt_name: _Optional[str] = ..., request_id: _Optional[str] = ..., model: _Optional[str] = ...) -> None: ...

class ChunkResult(_message.Message):
    __slots__ = ("start", "end", "token_count", "outside", "truncated", "attentions")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    TOKEN_COUNT_FIELD_NUMBER: _ClassVar[int]
    OUTSIDE_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    ATTENTIONS_FIELD_NUMBER: _ClassVar[int]
    start: int
    end: int
    token_count: int
    outside: bool
    truncated: bool
    attentions: Tensor
    def __init__(self, start: _Optional[int] = ..., end: _Optional[int] = ..., token_count: _Optional[int] = ..., outside: _Optional[bool] = ..., truncated: _Optional[bool] = ..., attentions: _Optional[_Union[Tensor, _Mapping]] = ...) -> None: ...

class DocumentChunks(_message.Message):
    __slots__ = ("vectors", "chunks", "token_count", "truncated", "prompt_tokens")
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_COUNT_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    vectors: Tensor
    chunks: _containers.RepeatedCompositeFieldContainer[ChunkResult]
    token_count: int
    truncated: bool
    prompt_tokens: int
    def __init__(self, vectors: _Optional[_Union[Tensor, _Mapping]] = ..., chunks: _Optional[_Iterable[_Union[ChunkResult, _Mapping]]] = ..., token_count: _Optional[int] = ..., truncated: _Optional[bool] = ..., prompt_tokens: _Optional[int] = ...) -> None: ...

class ChunkResponse(_message.Message):
    __slots__ = ("request_id", "model", "documents", "timings", "attention_layers", "attention_heads", "prompt_name")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    ATTENTION_LAYERS_FIELD_NUMBER: _ClassVar[int]
    ATTENTION_HEADS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_NAME_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    model: str
    documents: _containers.RepeatedCompositeFieldContainer[DocumentChunks]
    timings: Timings
    attention_layers: _containers.RepeatedScalarFieldContainer[int]
    attention_heads: _containers.RepeatedScalarFieldContainer[int]
    prompt_name: str
    def __init__(self, request_id: _Optional[str] = ..., model: _Optional[str] = ..., documents: _Optional[_Iterable[_Union[DocumentChunks, _Mapping]]] = ..., timings: _Optional[_Union[Timings, _Mapping]] = ..., attention_layers: _Optional[_Iterable[int]] = ..., attention_heads: _Optional[_Iterable[int]] = ..., prompt_name: _Optional[str] = ...) -> None: ...

class SparseRequest(_message.Message):
    __slots__ = ("texts", "model", "top_k", "min_weight", "truncation", "max_tokens", "return_tokens", "request_id")
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    MIN_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    TRUNCATION_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    RETURN_TOKENS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    texts: _containers.RepeatedScalarFieldContainer[str]
    model: str
    top_k: int
    min_weight: float
    truncation: Truncate
    max_tokens: int
    return_tokens: bool
    request_id: str
    def __init__(self, texts: _Optional[_Iterable[str]] = ..., model: _Optional[str] = ..., top_k: _Optional[int] = ..., min_weight: _Optional[float] = ..., truncation: _Optional[_Union[Truncate, str]] = ..., max_tokens: _Optional[int] = ..., return_tokens: _Optional[bool] = ..., request_id: _Optional[str] = ...) -> None: ...

class SparseVector(_message.Message):
    __slots__ = ("indices", "values", "tokens", "token_count", "truncated")
    INDICES_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_COUNT_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    indices: _containers.RepeatedScalarFieldContainer[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    tokens: _containers.RepeatedScalarFieldContainer[str]
    token_count: int
    truncated: bool
    def __init__(self, indices: _Optional[_Iterable[int]] = ..., values: _Optional[_Iterable[float]] = ..., tokens: _Optional[_Iterable[str]] = ..., token_count: _Optional[int] = ..., truncated: _Optional[bool] = ...) -> None: ...

class SparseResponse(_message.Message):
    __slots__ = ("request_id", "model", "vectors", "vocab_size", "total_tokens", "timings")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    VOCAB_SIZE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    model: str
    vectors: _containers.RepeatedCompositeFieldContainer[SparseVector]
    vocab_size: int
    total_tokens: int
    timings: Timings
    def __init__(self, request_id: _Optional[str] = ..., model: _Optional[str] = ..., vectors: _Optional[_Iterable[_Union[SparseVector, _Mapping]]] = ..., vocab_size: _Optional[int] = ..., total_tokens: _Optional[int] = ..., timings: _Optional[_Union[Timings, _Mapping]] = ...) -> None: ...

class MultiVectorRequest(_message.Message):
    __slots__ = ("texts", "model", "input_type", "dtype", "truncation", "max_tokens", "request_id")
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    INPUT_TYPE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    TRUNCATION_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    texts: _containers.RepeatedScalarFieldContainer[str]
    model: str
    input_type: InputType
    dtype: DType
    truncation: Truncate
    max_tokens: int
    request_id: str
    def __init__(self, texts: _Optional[_Iterable[str]] = ..., model: _Optional[str] = ..., input_type: _Optional[_Union[InputType, str]] = ..., dtype: _Optional[_Union[DType, str]] = ..., truncation: _Optional[_Union[Truncate, str]] = ..., max_tokens: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class TokenVectors(_message.Message):
    __slots__ = ("vectors", "token_ids", "spans", "token_count", "truncated")
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    SPANS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_COUNT_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    vectors: Tensor
    token_ids: _containers.RepeatedScalarFieldContainer[int]
    spans: _containers.RepeatedCompositeFieldContainer[CharSpan]
    token_count: int
    truncated: bool
    def __init__(self, vectors: _Optional[_Union[Tensor, _Mapping]] = ..., token_ids: _Optional[_Iterable[int]] = ..., spans: _Optional[_Iterable[_Union[CharSpan, _Mapping]]] = ..., token_count: _Optional[int] = ..., truncated: _Optional[bool] = ...) -> None: ...

class MultiVectorResponse(_message.Message):
    __slots__ = ("request_id", "model", "results", "total_tokens", "timings")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    model: str
    results: _containers.RepeatedCompositeFieldContainer[TokenVectors]
    total_tokens: int
    timings: Timings
    def __init__(self, request_id: _Optional[str] = ..., model: _Optional[str] = ..., results: _Optional[_Iterable[_Union[TokenVectors, _Mapping]]] = ..., total_tokens: _Optional[int] = ..., timings: _Optional[_Union[Timings, _Mapping]] = ...) -> None: ...

class ExplainRequest(_message.Message):
    __slots__ = ("texts", "query", "documents", "truncation", "max_tokens", "dimensions", "prompt_name", "rollout", "request_id", "model")
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATION_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_NAME_FIELD_NUMBER: _ClassVar[int]
    ROLLOUT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    texts: _containers.RepeatedScalarFieldContainer[str]
    query: str
    documents: _containers.RepeatedScalarFieldContainer[str]
    truncation: Truncate
    max_tokens: int
    dimensions: int
    prompt_name: str
    rollout: bool
    request_id: str
    model: str
    def __init__(self, texts: _Optional[_Iterable[str]] = ..., query: _Optional[str] = ..., documents: _Optional[_Iterable[str]] = ..., truncation: _Optional[_Union[Truncate, str]] = ..., max_tokens: _Optional[int] = ..., dimensions: _Optional[int] = ..., prompt_name: _Optional[str] = ..., rollout: _Optional[bool] = ..., request_id: _Optional[str] = ..., model: _Optional[str] = ...) -> None: ...

class ExplainedText(_message.Message):
    __slots__ = ("tokens", "relevance", "truncated", "prompt_tokens")
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    RELEVANCE_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    tokens: _containers.RepeatedCompositeFieldContainer[Token]
    relevance: Tensor
    truncated: bool
    prompt_tokens: int
    def __init__(self, tokens: _Optional[_Iterable[_Union[Token, _Mapping]]] = ..., relevance: _Optional[_Union[Tensor, _Mapping]] = ..., truncated: _Optional[bool] = ..., prompt_tokens: _Optional[int] = ...) -> None: ...

class SimilarityExplanation(_message.Message):
    __slots__ = ("cells", "first_shares", "second_shares", "cosine", "cells_sum", "dimensions")
    CELLS_FIELD_NUMBER: _ClassVar[int]
    FIRST_SHARES_FIELD_NUMBER: _ClassVar[int]
    SECOND_SHARES_FIELD_NUMBER: _ClassVar[int]
    COSINE_FIELD_NUMBER: _ClassVar[int]
    CELLS_SUM_FIELD_NUMBER: _ClassVar[int]
    DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
    cells: Tensor
    first_shares: Tensor
    second_shares: Tensor
    cosine: float
    cells_sum: float
    dimensions: int
    def __init__(self, cells: _Optional[_Union[Tensor, _Mapping]] = ..., first_shares: _Optional[_Union[Tensor, _Mapping]] = ..., second_shares: _Optional[_Union[Tensor, _Mapping]] = ..., cosine: _Optional[float] = ..., cells_sum: _Optional[float] = ..., dimensions: _Optional[int] = ...) -> None: ...

class ExplainedDocument(_message.Message):
    __slots__ = ("index", "score", "tokens", "relevance", "token_count", "truncated")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    RELEVANCE_FIELD_NUMBER: _ClassVar[int]
    TOKEN_COUNT_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    index: int
    score: float
    tokens: _containers.RepeatedScalarFieldContainer[str]
    relevance: Tensor
    token_count: int
    truncated: bool
    def __init__(self, index: _Optional[int] = ..., score: _Optional[float] = ..., tokens: _Optional[_Iterable[str]] = ..., relevance: _Optional[_Union[Tensor, _Mapping]] = ..., token_count: _Optional[int] = ..., truncated: _Optional[bool] = ...) -> None: ...

class ExplainResponse(_message.Message):
    __slots__ = ("request_id", "model", "texts", "similarity", "pooling", "documents", "timings", "prompt_name")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    POOLING_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_NAME_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    model: str
    texts: _containers.RepeatedCompositeFieldContainer[ExplainedText]
    similarity: SimilarityExplanation
    pooling: str
    documents: _containers.RepeatedCompositeFieldContainer[ExplainedDocument]
    timings: Timings
    prompt_name: str
    def __init__(self, request_id: _Optional[str] = ..., model: _Optional[str] = ..., texts: _Optional[_Iterable[_Union[ExplainedText, _Mapping]]] = ..., similarity: _Optional[_Union[SimilarityExplanation, _Mapping]] = ..., pooling: _Optional[str] = ..., documents: _Optional[_Iterable[_Union[ExplainedDocument, _Mapping]]] = ..., timings: _Optional[_Union[Timings, _Mapping]] = ..., prompt_name: _Optional[str] = ...) -> None: ...
