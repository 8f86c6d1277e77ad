from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Tensor(_message.Message):
    __slots__ = ("name", "dtype", "shape", "offset", "nbytes")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    NBYTES_FIELD_NUMBER: _ClassVar[int]
    name: str
    dtype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    offset: int
    nbytes: int
    def __init__(self, name: _Optional[str] = ..., dtype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., offset: _Optional[int] = ..., nbytes: _Optional[int] = ...) -> None: ...

class Model(_message.Message):
    __slots__ = ("has_params", "params_type", "metrics_json", "meta_json", "current_round", "total_rounds", "tensors")
    HAS_PARAMS_FIELD_NUMBER: _ClassVar[int]
    PARAMS_TYPE_FIELD_NUMBER: _ClassVar[int]
    METRICS_JSON_FIELD_NUMBER: _ClassVar[int]
    META_JSON_FIELD_NUMBER: _ClassVar[int]
    CURRENT_ROUND_FIELD_NUMBER: _ClassVar[int]
    TOTAL_ROUNDS_FIELD_NUMBER: _ClassVar[int]
    TENSORS_FIELD_NUMBER: _ClassVar[int]
    has_params: bool
    params_type: str
    metrics_json: str
    meta_json: str
    current_round: int
    total_rounds: int
    tensors: _containers.RepeatedCompositeFieldContainer[Tensor]
    def __init__(self, has_params: bool = ..., params_type: _Optional[str] = ..., metrics_json: _Optional[str] = ..., meta_json: _Optional[str] = ..., current_round: _Optional[int] = ..., total_rounds: _Optional[int] = ..., tensors: _Optional[_Iterable[_Union[Tensor, _Mapping]]] = ...) -> None: ...

class FrameHeader(_message.Message):
    __slots__ = ("kind", "headers_json", "model")
    KIND_FIELD_NUMBER: _ClassVar[int]
    HEADERS_JSON_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    kind: str
    headers_json: str
    model: Model
    def __init__(self, kind: _Optional[str] = ..., headers_json: _Optional[str] = ..., model: _Optional[_Union[Model, _Mapping]] = ...) -> None: ...
