"""Load and validate ``site_config/site.yml`` before any work starts.

A site holds one or more experiments. A config may list them under ``experiments``, each with
its own ``data``, ``model``, ``training``, ``attack``, ``figures``, ``robustness`` and
``images``; the top-level sections give the defaults they share (an experiment's section is
merged key by key over the top-level one). A config without ``experiments`` is one experiment
made of its top-level sections and ``images``.

Text a reader sees (site title and description, experiment and image titles, captions, class
names) is either one string or a mapping of language code to string (``{zh: 小熊猫, en: red
panda}``).

The schema is declared with pydantic in strict mode (``true`` is not a number, ``"8"`` is not
an integer); this module turns its errors into one line per problem that names the key path
(with the experiment) and the bad value, with a did-you-mean for misspelt keys.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union
from urllib.parse import urlsplit

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator,
                      model_validator)
from pydantic_core import PydanticCustomError

from generator.analysis.grid import grid_problem
from generator.errors import UserError, quote_value, shorten, suggest
from generator.inputs.model_files import check_model_file
from generator.inputs.paths import file_problem, project_root, shown_path

REPO_ROOT = Path(__file__).resolve().parents[2]
# Read from the folder the command runs in: a project's own config, never the one of the folder
# Butterfly is installed in (whose build a `butterfly clean` elsewhere would otherwise remove).
DEFAULT_CONFIG = Path("site_config") / "site.yml"

# Languages the site has templates for; site.languages chooses among them and their order.
LANGUAGES = ("zh", "en")
Language = Literal["zh", "en"]

LocalText = Union[str, dict[Language, str]]
def _number(value: Any) -> float:
    """An int or a float; true/false and text are not numbers (YAML reads `yes` as true)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PydanticCustomError("float_type", "expected a number")
    return float(value)


Number = Annotated[float, BeforeValidator(_number)]
# Seeds go to NumPy and Keras, which take 0 to 2**32 - 1 only.
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]


def localized(value: LocalText | None, lang: str) -> str | None:
    """``value`` in language ``lang``: the string itself, or its ``lang`` entry, else English,
    else the first entry given."""
    if value is None or isinstance(value, str):
        return value
    return value.get(lang) or value.get("en") or next(iter(value.values()))


def canonical(value: LocalText) -> str:
    """The name a class or title is known by in labels, targets and ids: English if given."""
    return localized(value, "en")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, validate_default=True)


def _check_local_text(value: LocalText | None) -> LocalText | None:
    if isinstance(value, dict) and not value:
        raise ValueError("give the text as a string or a mapping of language to text, e.g. {zh: ..., en: ...}")
    return value


def check_url(value: str | None) -> str | None:
    """An http(s) address, or None. Anything that could end an HTML attribute is refused."""
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"must be an http:// or https:// address, got {shorten(value)!r}")
    if re.search(r"[\s\"'<>`\\{}|^]", value):
        raise ValueError(f"must be a plain web address without spaces, quotes or <>, got {shorten(value)!r}")
    return value


class SiteSection(Section):
    title: LocalText = {"zh": "蝴蝶效应：看不见的扰动如何骗过神经网络",
                        "en": "The butterfly effect: how an invisible change fools a neural network"}
    description: LocalText = {"zh": "一步一步看对抗样本在小型卷积网络里逐层放大。",
                              "en": "A step-by-step walkthrough of adversarial examples inside a small CNN."}
    site_url: Optional[str] = None
    repo_url: Optional[str] = None
    languages: list[Language] = Field(default_factory=lambda: list(LANGUAGES), min_length=1)

    _local = field_validator("title", "description")(_check_local_text)
    _urls = field_validator("site_url", "repo_url")(check_url)

    @field_validator("languages")
    @classmethod
    def _unique(cls, values: list[str]) -> list[str]:
        if len(set(values)) != len(values):
            raise ValueError(f"lists a language twice: {values}")
        return values


ClassName = Union[str, dict[Language, str]]


def _check_class_names(values: list[ClassName] | None) -> list[ClassName] | None:
    """Class names tell classes apart in labels, targets and figures: none empty, none twice
    (in any language)."""
    if values is None:
        return values
    for lang in (None, *LANGUAGES):
        names = [canonical(value) if lang is None else localized(value, lang) for value in values]
        for index, name in enumerate(names):
            if not name.strip():
                raise ValueError(f"class name [{index}] is empty")
            if name in names[:index]:
                raise ValueError(f"{quote_value(name)} is listed twice (classes [{names.index(name)}] and [{index}])")
    return values


class DataSection(Section):
    source: Literal["embedded", "idx", "folder", "download", "none"] = "embedded"
    path: Optional[str] = None
    recipe: Optional[Literal["fashion-mnist", "cifar-10", "tiny-imagenet-cnn-explainer"]] = None
    class_names: Optional[list[ClassName]] = None
    validation_split: Number = Field(0.2, gt=0.0, lt=1.0)
    seed: Seed = 0

    _names = field_validator("class_names")(_check_class_names)


class ModelSection(Section):
    source: Literal["train", "file"] = "train"
    path: Optional[str] = None
    class_names: Optional[list[ClassName]] = Field(None, min_length=2)
    input_range: list[Number] = Field(default_factory=lambda: [0.0, 1.0], min_length=2, max_length=2)
    blocks: int = Field(2, ge=1, le=4)
    filters: int = Field(10, ge=1, le=256)

    _names = field_validator("class_names")(_check_class_names)

    @field_validator("input_range")
    @classmethod
    def _ordered(cls, values: list[float]) -> list[float]:
        if not all(math.isfinite(v) for v in values) or values[0] >= values[1]:
            raise ValueError(f"must be [low, high] with low < high, got {values}")
        return [float(v) for v in values]


class TrainingSection(Section):
    epochs: int = Field(8, ge=1, le=500)
    batch_size: int = Field(64, ge=1, le=4096)
    learning_rate: Number = Field(0.004, gt=0.0, le=1.0)
    seed: Seed = 1
    probe_image: int = Field(0, ge=0)


class AttackOverrides(Section):
    method: Optional[Literal["fgsm", "bim", "pgd"]] = None
    epsilon_start: Optional[Number] = Field(None, ge=0.0, le=1.0)
    epsilon_step: Optional[Number] = Field(None, gt=0.0, le=1.0)
    epsilon_max: Optional[Number] = Field(None, gt=0.0, le=1.0)
    target: Optional[str] = None
    iterations: Optional[int] = Field(None, ge=1, le=1000)
    step_size: Optional[Number] = Field(None, gt=0.0, le=1.0)


class AttackSection(Section):
    method: Literal["fgsm", "bim", "pgd"] = "fgsm"
    epsilon_start: Number = Field(0.01, ge=0.0, le=1.0)
    epsilon_step: Number = Field(0.0007, gt=0.0, le=1.0)
    epsilon_max: Number = Field(0.3, gt=0.0, le=1.0)
    target: Optional[str] = None
    iterations: int = Field(10, ge=1, le=1000)
    step_size: Optional[Number] = Field(None, gt=0.0, le=1.0)
    noise_seed: Seed = 0
    noise_draws: int = Field(8, ge=1, le=64)
    change_threshold: Number = Field(0.05, gt=0.0, lt=1.0)

    @model_validator(mode="after")
    def _searchable(self):
        problem = grid_problem(self.epsilon_start, self.epsilon_step, self.epsilon_max)
        if problem:
            raise ValueError(problem)
        return self


class FiguresSection(Section):
    zoom_layer: str = "max_pool_1"
    zoom_channel: int = Field(2, ge=0)
    max_channels: int = Field(10, ge=1, le=64)
    top_k: int = Field(5, ge=1, le=20)
    gif_fps: Number = Field(4.0, gt=0.0, le=30.0)
    gif_max_frames: int = Field(60, ge=2, le=300)
    gif_max_kb: int = Field(500, ge=50, le=20_000)

    @model_validator(mode="before")
    @classmethod
    def _former_names(cls, data):
        """Configs written before pooling layers were said to have channels (not filters) keep working."""
        if isinstance(data, dict):
            for old, new in (("zoom_filter", "zoom_channel"), ("max_filters", "max_channels")):
                if old in data:
                    if new in data:
                        raise ValueError(f"give {new} or its former name {old}, not both")
                    data = {**{k: v for k, v in data.items() if k != old}, new: data[old]}
        return data


class RobustnessSection(Section):
    samples: int = Field(1000, ge=0, le=100000)
    epsilons: list[Number] = Field(default_factory=lambda: [0.0, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1,
                                                            0.15, 0.2])

    @field_validator("epsilons")
    @classmethod
    def _in_range(cls, values: list[float]) -> list[float]:
        for index, value in enumerate(values):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"every epsilon must lie in [0, 1], got {value}")
            if value in values[:index]:
                raise ValueError(f"lists the epsilon {value} twice")
        return sorted(float(v) for v in values)

    @model_validator(mode="after")
    def _curve_has_points(self):
        if self.samples and not self.epsilons:
            raise ValueError("epsilons: list at least one epsilon, or set samples: 0 to leave the curve out")
        return self


_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")


class ImageEntry(Section):
    path: str = Field(min_length=1)
    label: Optional[str] = None
    title: Optional[LocalText] = None
    caption: Optional[LocalText] = None
    id: Optional[str] = None
    attack: AttackOverrides = AttackOverrides()

    _local = field_validator("title", "caption")(_check_local_text)

    @field_validator("id")
    @classmethod
    def _slug(cls, value: str | None) -> str | None:
        if value is not None and not _SLUG.match(value):
            raise ValueError(f"must be lower-case letters, digits and hyphens (the page's name), "
                             f"got {quote_value(value)}")
        return value


SECTIONS = ("data", "model", "training", "attack", "figures", "robustness")


class Experiment(Section):
    """One experiment: its data, model, attack settings and images (top-level defaults merged in)."""

    id: str
    title: Optional[LocalText] = None
    description: Optional[LocalText] = None
    data: DataSection = DataSection()
    model: ModelSection = ModelSection()
    training: TrainingSection = TrainingSection()
    attack: AttackSection = AttackSection()
    figures: FiguresSection = FiguresSection()
    robustness: RobustnessSection = RobustnessSection()
    images: list[ImageEntry] = Field(min_length=1)

    base_dir: Path = Field(REPO_ROOT, exclude=True)
    # Where the experiment's keys live in the file, for messages: "experiments[1] (fashion)" or "".
    where: str = Field("", exclude=True)

    _local = field_validator("title", "description")(_check_local_text)

    @field_validator("id")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _SLUG.match(value):
            raise ValueError(f"must be lower-case letters, digits and hyphens, got {quote_value(value)}")
        return value

    def resolve(self, relative: str) -> Path:
        """A path from the config, relative to the project root (the folder holding site_config/)."""
        path = Path(relative).expanduser()
        return path if path.is_absolute() else self.base_dir / path

    def key(self, key_path: str) -> str:
        """A key of this experiment as the config file spells it: 'experiments[0] (article).attack'."""
        return f"{self.where}.{key_path}" if self.where else key_path


class Config(BaseModel):
    """The whole site: its settings and its experiments, in order."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    site: SiteSection
    experiments: list[Experiment]
    config_file: Path
    base_dir: Path

    def resolve(self, relative: str) -> Path:
        path = Path(relative).expanduser()
        return path if path.is_absolute() else self.base_dir / path


class _TopLevel(Section):
    """The file's top level: every section is optional; experiments or images must be given."""

    site: SiteSection = SiteSection()
    data: dict = {}
    model: dict = {}
    training: dict = {}
    attack: dict = {}
    figures: dict = {}
    robustness: dict = {}
    images: Optional[list] = None
    experiments: Optional[list[dict]] = Field(None, min_length=1)


# --- messages ----------------------------------------------------------------------------------

def _key_path(loc: tuple) -> str:
    """'images[0].attack.target' from pydantic's location; a key of absurd length is cut."""
    text = ""
    for part in loc:
        part = part if isinstance(part, int) else shorten(part, 60)
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _model_of(annotation: Any) -> Any:
    """The pydantic model inside an annotation such as Optional[list[X]], or None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _allowed_keys(model: Any, loc: tuple) -> list[str]:
    """Field names of the section that holds the key at ``loc``."""
    for part in loc[:-1]:
        if isinstance(part, int) or part not in getattr(model, "model_fields", {}):
            continue
        model = _model_of(model.model_fields[part].annotation) or model
    return [name for name, field in model.model_fields.items() if not field.exclude]


_TYPE_WORDS = {"int": "an integer", "float": "a number", "string": "a string", "str": "a string",
               "bool": "true or false", "list": "a list", "dict": "a mapping", "model": "a mapping",
               "tuple": "a list", "literal": "one of the listed values"}


def _describe(error: dict, model: Any) -> str:
    """One readable sentence for one pydantic error."""
    kind, loc, value = error["type"], error["loc"], error.get("input")
    shown = quote_value(value)
    if kind == "extra_forbidden":
        key, allowed = str(loc[-1]), _allowed_keys(model, loc)
        hint = suggest(key, allowed) or f" (allowed: {', '.join(allowed)})"
        return f"unknown key '{shorten(key)}'{hint}"
    if kind == "missing":
        return "is required but missing"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        bound = next(iter(error["ctx"].values()))
        words = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
        return f"must be {words[kind]} {bound}, got {shown}"
    if kind == "literal_error":
        return f"must be one of {error['ctx']['expected']}, got {shown}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "too_short":
        return "must list at least one entry" if error["ctx"].get("min_length", 1) <= 1 else \
            f"must list at least {error['ctx']['min_length']} entries"
    if kind == "too_long":
        return f"must list at most {error['ctx']['max_length']} entries, got {len(value)}"
    if kind == "value_error":
        return str(error["ctx"]["error"])
    for word, phrase in _TYPE_WORDS.items():
        if kind.startswith(word) and kind.endswith("_type") or kind in (f"{word}_parsing", f"{word}_from_float"):
            return f"expected {phrase}, got {shown}"
    return f"{error['msg'].lower()}, got {shown}"


def _problems(error: ValidationError, model: Any, prefix: str = "") -> list[str]:
    """One line per distinct problem. A value that fails every branch of a union (text given as a
    string or a mapping) is reported once, by its most telling branch."""
    lines, seen = [], set()
    for item in error.errors():
        loc = tuple(part for part in item["loc"] if not (isinstance(part, str) and (
            part in ("str", "int", "float", "function-after[_check_local_text(), str]")
            or part.startswith(("dict[", "function-", "union[", "list[")))))
        path = _key_path(loc)
        if path in seen:
            continue
        seen.add(path)
        where = ".".join(p for p in (prefix, path) if p) if not path.startswith("[") else prefix + path
        lines.append(f"{where or '(top level)'}: {_describe(item, model)}")
    return lines


# --- loading -----------------------------------------------------------------------------------

def _merged(top: _TopLevel, raw: dict) -> dict:
    """An experiment's mapping with the top-level sections merged under its own, key by key."""
    merged = dict(raw)
    for section in SECTIONS:
        own = raw.get(section)
        defaults = getattr(top, section)
        merged[section] = {**defaults, **own} if isinstance(own, dict) else (own if own is not None else defaults)
    return merged


def parse_config(data: Any, config_file: Path) -> Config:
    """Validate a parsed YAML document; raise UserError listing every problem."""
    config_file = Path(config_file)
    if not isinstance(data, dict):
        raise UserError(f"{config_file}: expected a mapping of sections at the top level")
    try:
        top = _TopLevel.model_validate(data)
    except ValidationError as error:
        raise UserError(f"{config_file}: " + "; ".join(_problems(error, _TopLevel))) from None
    base_dir = project_root(config_file)
    problems: list[str] = []
    if top.experiments is None:
        if top.images is None:
            raise UserError(f"{config_file}: images: is required but missing (or list experiments)")
        raws = [("", {"id": "main", **{s: getattr(top, s) for s in SECTIONS}, "images": top.images})]
    else:
        if top.images is not None:
            raise UserError(f"{config_file}: images: give the images inside each experiment "
                            "(experiments[i].images), not at the top level")
        raws = []
        for i, raw in enumerate(top.experiments):
            name = raw.get("id") if isinstance(raw.get("id"), str) else None
            raws.append((f"experiments[{i}]" + (f" ({shorten(name)})" if name else ""), _merged(top, raw)))
    experiments = []
    for where, raw in raws:
        try:
            experiments.append(Experiment.model_validate({**raw, "base_dir": base_dir, "where": where}))
        except ValidationError as error:
            problems += _problems(error, Experiment, where)
    ids = [e.id for e in experiments]
    for duplicate in sorted({i for i in ids if ids.count(i) > 1}):
        problems.append(f"experiments: id '{duplicate}' is used twice")
    if problems:
        raise UserError(f"{config_file}: " + "; ".join(problems))
    return Config(site=top.site, experiments=experiments, config_file=config_file, base_dir=base_dir)


def _file_message(written: str, problem: str) -> str:
    """'file not found: images/a.png' or 'images/a.png is a folder, not a file'."""
    shown = shown_path(written)
    return f"file not found: {shown}" if problem == "not found" else f"{shown} {problem}"


def check_inputs(config: Config, *, keep_going: bool = False) -> None:
    """Checks that need the file system: configured files and folders exist and are what they
    should be; a model file is checked as far as that needs no TensorFlow. With ``keep_going``
    an image that cannot be read is left to the images stage, which builds the other images and
    lists the failures."""
    problems = []
    for experiment in config.experiments:
        key = experiment.key
        for i, entry in enumerate([] if keep_going else experiment.images):
            problem = file_problem(experiment.resolve(entry.path))
            if problem:
                problems.append(f"{key(f'images[{i}].path')}: {_file_message(entry.path, problem)}")
        data, model = experiment.data, experiment.model
        if data.source in ("idx", "folder") and not data.path:
            problems.append(f"{key('data.path')}: required when data.source is '{data.source}'")
        elif data.source in ("idx", "folder") and not experiment.resolve(data.path).is_dir():
            problems.append(f"{key('data.path')}: " + (f"{shown_path(data.path)} is not a folder"
                                                       if experiment.resolve(data.path).exists()
                                                       else f"folder not found: {shown_path(data.path)}"))
        if data.source == "none" and model.source == "train":
            problems.append(f"{key('data.source')}: 'none' needs model.source: file (training needs data)")
        if data.source == "none" and model.source == "file" and not model.class_names:
            problems.append(f"{key('model.class_names')}: required when data.source is 'none' "
                            "(the model's output order)")
        if data.source == "download" and not data.recipe:
            problems.append(f"{key('data.recipe')}: required when data.source is 'download'")
        if model.source == "file":
            if not model.path:
                problems.append(f"{key('model.path')}: required when model.source is 'file'")
            else:
                path = experiment.resolve(model.path)
                # A TF.js model may be given as its folder (holding model.json).
                problem = None if path.is_dir() and (path / "model.json").is_file() else file_problem(path)
                if problem:
                    problems.append(f"{key('model.path')}: {_file_message(model.path, problem)}")
                else:
                    try:   # what can be known without TensorFlow: the file's type, container, layers
                        check_model_file(path)
                    except UserError as error:
                        problems.append(f"{key('model.path')}: {error}")
    if problems:
        raise UserError(f"{config.config_file}: " + "; ".join(problems))


def load_config(path: Path | str | None = None, *, keep_going: bool = False) -> Config:
    """Read, validate and check a config file; every problem is a UserError naming the key.

    ``keep_going`` (``butterfly build --keep-going``) leaves unreadable images to the images
    stage, so that the other images are built."""
    from generator.inputs.yaml_safe import read_yaml_file

    config_file = Path(path) if path else DEFAULT_CONFIG
    if not config_file.exists():
        raise UserError(f"config file not found: {config_file}")
    data = read_yaml_file(config_file)
    config = parse_config(data if data is not None else {}, config_file)
    check_inputs(config, keep_going=keep_going)
    return config


def section_dict(section: BaseModel) -> dict:
    """A section as plain JSON-ready data (for cache keys and the manifest)."""
    return section.model_dump(mode="json")
