"""The one settings model: its fields are the embedder's keywords, and it builds the embedder."""

from __future__ import annotations

import inspect

import pytest
import torch
from pydantic import ValidationError

from tests.samples import INSTRUCTION, tiny_options
from youtu_rag import TencentCloudEmbedder, YoutuEmbedder
from youtu_rag.backends.http import HttpEmbedder
from youtu_rag.backends.settings import (
    SERVER_KEYWORDS,
    SERVER_OPTIONS,
    TENCENT_CLOUD_OPTIONS,
    EmbedderSettings,
    local_options,
)

KEYWORDS = {
    name: parameter
    for name, parameter in inspect.signature(YoutuEmbedder.__init__).parameters.items()
    if name != "self"
}


def test_fields_are_the_embedders_keywords_with_its_defaults() -> None:
    """Fails when an option is added to one and not the other, or their defaults drift.

    The fields are YoutuEmbedder's keywords, then the documented remote ones: the server's URL
    and key (HttpEmbedder's keywords) and the Tencent Cloud API's (TencentCloudEmbedder's).
    """
    fields = EmbedderSettings.model_fields
    assert list(fields) == [*KEYWORDS, *SERVER_OPTIONS, *TENCENT_CLOUD_OPTIONS]
    assert local_options() == list(KEYWORDS)
    for name in KEYWORDS:
        assert fields[name].default == KEYWORDS[name].default, name
    server = inspect.signature(HttpEmbedder.__init__).parameters
    cloud = inspect.signature(TencentCloudEmbedder.__init__).parameters
    assert {SERVER_KEYWORDS.get(name, name) for name in SERVER_OPTIONS} <= set(server)
    assert set(TENCENT_CLOUD_OPTIONS) <= set(cloud)
    for name in (*SERVER_OPTIONS, *TENCENT_CLOUD_OPTIONS):
        assert fields[name].default is None, name  # None: the backend's own default


def test_options_a_backend_cannot_honour_are_refused(tiny_youtu_dir: str) -> None:
    with pytest.raises(ValueError, match="region cannot be set"):
        EmbedderSettings(**tiny_options(tiny_youtu_dir), region="ap-beijing").build()
    with pytest.raises(ValueError, match="max_batch_tokens, pooling_mode cannot be set"):
        EmbedderSettings(
            model="tencent-cloud:lke-text-embedding-v1", pooling_mode="cls", max_batch_tokens=64
        ).build()
    with pytest.raises(ValueError, match="device cannot be set with base_url"):
        EmbedderSettings(base_url="http://127.0.0.1:9", device="cpu").build()
    with pytest.raises(ValueError, match="pass base_url"):
        EmbedderSettings(**tiny_options(tiny_youtu_dir), api_key="k").build()


def test_the_api_key_is_never_serialised() -> None:
    settings = EmbedderSettings(base_url="http://127.0.0.1:9", api_key="s3cret")
    assert "api_key" not in settings.model_dump()
    assert "s3cret" not in settings.model_dump_json() + repr(settings)
    assert settings.api_key is not None and settings.api_key.get_secret_value() == "s3cret"


def test_build_makes_the_embedder_the_fields_describe(tiny_youtu_dir: str) -> None:
    settings = EmbedderSettings(**tiny_options(tiny_youtu_dir, max_length=40))
    embedder = settings.build()
    assert embedder.arguments == settings.embedder_options()
    assert (embedder.query_task, embedder.max_length, embedder.batch_size) == (INSTRUCTION, 40, 2)


def test_torch_objects_are_stored_as_their_names() -> None:
    settings = EmbedderSettings(device=torch.device("cpu"), dtype=torch.bfloat16)
    assert (settings.device, settings.dtype) == ("cpu", "bfloat16")
    assert settings.model_dump_json()


def test_values_are_checked_and_frozen() -> None:
    with pytest.raises(ValidationError, match="batch_size"):
        EmbedderSettings(batch_size=0)
    with pytest.raises(ValidationError, match="pooling_mode"):
        EmbedderSettings(pooling_mode="max")  # type: ignore[arg-type]
    settings = EmbedderSettings()
    with pytest.raises(ValidationError, match="frozen"):
        settings.batch_size = 4  # type: ignore[misc]
