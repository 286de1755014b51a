"""Load and validate ``site_config/site.yml`` before any work starts.

The schema is declared with pydantic; this module turns its errors into one line per problem
that names the key path and the bad value, with a did-you-mean for misspelt keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from generator.errors import UserError, suggest

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO_ROOT / "site_config" / "site.yml"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, validate_default=True)


class SiteSection(Section):
    title: str = "The butterfly effect: how an invisible change fools a neural network"
    description: str = "A step-by-step walkthrough of adversarial examples inside a small CNN."
    site_url: Optional[str] = None
    repo_url: Optional[str] = None


class DataSection(Section):
    source: Literal["embedded", "idx", "folder", "download", "none"] = "embedded"
    path: Optional[str] = None
    recipe: Optional[Literal["fashion-mnist", "cifar-10", "tiny-imagenet-cnn-explainer"]] = None
    class_names: Optional[list[str]] = None
    validation_split: float = Field(0.2, gt=0.0, lt=1.0)
    seed: int = 0


class ModelSection(Section):
    source: Literal["train", "file"] = "train"
    path: Optional[str] = None
    class_names: Optional[list[str]] = None
    input_range: tuple[float, float] = (0.0, 1.0)
    blocks: int = Field(2, ge=1, le=4)
    filters: int = Field(10, ge=1, le=256)


class TrainingSection(Section):
    epochs: int = Field(8, ge=1, le=500)
    batch_size: int = Field(64, ge=1, le=4096)
    learning_rate: float = Field(0.004, gt=0.0, le=1.0)
    seed: int = 1
    probe_image: int = Field(0, ge=0)


class AttackOverrides(Section):
    method: Optional[Literal["fgsm", "bim", "pgd"]] = None
    epsilon_start: Optional[float] = Field(None, ge=0.0, le=1.0)
    epsilon_step: Optional[float] = Field(None, gt=0.0, le=1.0)
    epsilon_max: Optional[float] = Field(None, gt=0.0, le=1.0)
    target: Optional[str] = None
    iterations: Optional[int] = Field(None, ge=1, le=1000)
    step_size: Optional[float] = Field(None, gt=0.0, le=1.0)


class AttackSection(Section):
    method: Literal["fgsm", "bim", "pgd"] = "fgsm"
    epsilon_start: float = Field(0.01, ge=0.0, le=1.0)
    epsilon_step: float = Field(0.0007, gt=0.0, le=1.0)
    epsilon_max: float = Field(0.3, gt=0.0, le=1.0)
    target: Optional[str] = None
    iterations: int = Field(10, ge=1, le=1000)
    step_size: Optional[float] = Field(None, gt=0.0, le=1.0)
    noise_seed: int = 0
    change_threshold: float = Field(0.05, gt=0.0, lt=1.0)

    @model_validator(mode="after")
    def _start_below_max(self):
        if self.epsilon_start > self.epsilon_max:
            raise ValueError(f"epsilon_start ({self.epsilon_start}) is larger than epsilon_max ({self.epsilon_max})")
        return self


class FiguresSection(Section):
    zoom_layer: str = "max_pool_1"
    zoom_filter: int = Field(2, ge=0)
    max_filters: int = Field(10, ge=1, le=64)
    top_k: int = Field(5, ge=1, le=20)
    gif_fps: float = Field(4.0, gt=0.0, le=30.0)
    gif_max_frames: int = Field(60, ge=2, le=300)
    gif_max_kb: int = Field(500, ge=50)


class RobustnessSection(Section):
    samples: int = Field(500, ge=0, le=100000)
    epsilons: list[float] = [0.0, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2]

    @field_validator("epsilons")
    @classmethod
    def _in_range(cls, values: list[float]) -> list[float]:
        for value in values:
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"every epsilon must lie in [0, 1], got {value}")
        return sorted(values)


class ImageEntry(Section):
    path: str
    label: Optional[str] = None
    title: Optional[str] = None
    caption: Optional[str] = None
    attack: AttackOverrides = AttackOverrides()


class Config(Section):
    site: SiteSection = SiteSection()
    data: DataSection = DataSection()
    model: ModelSection = ModelSection()
    training: TrainingSection = TrainingSection()
    attack: AttackSection = AttackSection()
    figures: FiguresSection = FiguresSection()
    robustness: RobustnessSection = RobustnessSection()
    images: list[ImageEntry] = Field(min_length=1)

    # Filled in by load_config, not read from the file.
    config_file: Path = Field(REPO_ROOT / "site_config" / "site.yml", exclude=True)
    base_dir: Path = Field(REPO_ROOT, exclude=True)

    def resolve(self, relative: str) -> Path:
        """A path from the config, relative to the repository root (the folder holding site_config/)."""
        path = Path(relative).expanduser()
        return path if path.is_absolute() else self.base_dir / path


def _key_path(loc: tuple) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _allowed_keys(loc: tuple) -> list[str]:
    """Field names of the section that holds the key at ``loc``."""
    model: Any = Config
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        annotation = model.model_fields[part].annotation
        args = getattr(annotation, "__args__", ())
        model = args[0] if args else annotation
    return [name for name, field in model.model_fields.items() if not field.exclude]


_TYPE_WORDS = {"int": "an integer", "float": "a number", "string": "a string", "bool": "true or false",
               "list": "a list", "dict": "a mapping", "model": "a mapping", "tuple": "a list of 2 numbers"}


def _describe(error: dict) -> str:
    """One readable sentence for one pydantic error."""
    kind, loc, value = error["type"], error["loc"], error.get("input")
    if kind == "extra_forbidden":
        key, allowed = str(loc[-1]), _allowed_keys(loc)
        hint = suggest(key, allowed) or f" (allowed: {', '.join(allowed)})"
        return f"unknown key '{key}'{hint}"
    if kind == "missing":
        return "is required but missing"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        bound = next(iter(error["ctx"].values()))
        words = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
        return f"must be {words[kind]} {bound}, got {value!r}"
    if kind == "literal_error":
        return f"must be one of {error['ctx']['expected']}, got {value!r}"
    if kind == "too_short" and isinstance(value, list):
        return "must list at least one entry"
    for word, phrase in _TYPE_WORDS.items():
        if kind.startswith(word) and kind.endswith("_type") or kind in (f"{word}_parsing", f"{word}_from_float"):
            return f"expected {phrase}, got {value!r}"
    if kind == "value_error":
        return str(error["ctx"]["error"])
    return f"{error['msg'].lower()}, got {value!r}"


def project_root(config_file: Path) -> Path:
    """The folder paths in a config are relative to: the one holding site_config/, else the file's own."""
    folder = Path(config_file).resolve().parent
    return folder.parent if folder.name == "site_config" else folder


def parse_config(data: Any, config_file: Path) -> Config:
    """Validate a parsed YAML document; raise UserError listing every problem."""
    if not isinstance(data, dict):
        raise UserError(f"{config_file}: expected a mapping of sections at the top level")
    base_dir = project_root(config_file)
    try:
        config = Config.model_validate({**data, "config_file": config_file, "base_dir": base_dir},
                                       strict=False)
    except ValidationError as error:
        lines = [f"{_key_path(e['loc']) or '(top level)'}: {_describe(e)}" for e in error.errors()]
        raise UserError(f"{config_file}: " + "; ".join(lines)) from None
    return config


def check_inputs(config: Config) -> None:
    """Checks that need the file system: configured files and folders exist."""
    problems = []
    for i, entry in enumerate(config.images):
        if not config.resolve(entry.path).is_file():
            problems.append(f"images[{i}].path: file not found: {entry.path}")
    if config.data.source in ("idx", "folder") and not config.data.path:
        problems.append(f"data.path: required when data.source is '{config.data.source}'")
    elif config.data.source in ("idx", "folder") and not config.resolve(config.data.path).is_dir():
        problems.append(f"data.path: folder not found: {config.data.path}")
    if config.data.source == "none" and config.model.source == "train":
        problems.append("data.source: 'none' needs model.source: file (training needs data)")
    if config.data.source == "none" and config.model.source == "file" and not config.model.class_names:
        problems.append("model.class_names: required when data.source is 'none' (the model's output order)")
    if config.data.source == "download" and not config.data.recipe:
        problems.append("data.recipe: required when data.source is 'download'")
    if config.model.source == "file":
        if not config.model.path:
            problems.append("model.path: required when model.source is 'file'")
        elif not config.resolve(config.model.path).exists():
            problems.append(f"model.path: file not found: {config.model.path}")
    if problems:
        raise UserError(f"{config.config_file}: " + "; ".join(problems))


def load_config(path: Path | str | None = None) -> Config:
    """Read, validate and check a config file; every problem is a UserError naming the key."""
    config_file = Path(path) if path else DEFAULT_CONFIG
    try:
        text = config_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"config file not found: {config_file}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read config file {config_file}: {error}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UserError(f"{config_file}:{where} is not valid YAML ({getattr(error, 'problem', error)})") from None
    config = parse_config(data if data is not None else {}, config_file)
    check_inputs(config)
    return config


def section_dict(section: BaseModel) -> dict:
    """A section as plain JSON-ready data (for cache keys and the manifest)."""
    return section.model_dump(mode="json")
