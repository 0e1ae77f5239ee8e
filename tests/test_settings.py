"""The one settings model: its fields are the embedder's keywords, and it builds the embedder."""

from __future__ import annotations

import inspect

import pytest
import torch
from pydantic import ValidationError

from tests.samples import INSTRUCTION, tiny_options
from youtu_rag import YoutuEmbedder
from youtu_rag.settings import EmbedderSettings

KEYWORDS = {
    name: parameter
    for name, parameter in inspect.signature(YoutuEmbedder.__init__).parameters.items()
    if name != "self"
}


def test_fields_are_the_embedders_keywords_with_its_defaults() -> None:
    """Fails when an option is added to one and not the other, or their defaults drift."""
    assert list(EmbedderSettings.model_fields) == list(KEYWORDS)
    for name, field in EmbedderSettings.model_fields.items():
        assert field.default == KEYWORDS[name].default, name


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
