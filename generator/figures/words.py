"""The words of the figures in each site language, and the fonts that write them.

Every phrase a figure prints or puts in its alt text lives in one table, PHRASES, with its English
and Chinese side by side, so nothing is translated in two places. A figure function takes a
`Words` object (`words_for('en')` or `words_for('zh')`) and asks it for phrases by key:
``words.t("zoom_heading", layer="max_pool_1", ...)``, and for its fonts: ``words.face(12)`` (Pillow)
and ``words.families()`` (matplotlib).

Chinese text needs a CJK font. It is looked for in the environment variable BUTTERFLY_CJK_FONT,
then with ``fc-match ':lang=zh-cn'``, then at well-known paths; a .ttc collection is opened at
the face of its Simplified Chinese family. Without one, ``words_for('zh')`` gives the English
words and says so in `fallback_warning`; `font_fingerprint` names the font file actually used,
so a cache keyed by it renders the Chinese figures again once a font appears.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import ImageFont


def _font_dir() -> str | None:
    spec = importlib.util.find_spec("matplotlib")  # locating the package does not import it
    if spec is None or spec.origin is None:
        return None
    folder = os.path.join(os.path.dirname(spec.origin), "mpl-data", "fonts", "ttf")
    return folder if os.path.isdir(folder) else None


def latin_font_file(bold: bool = False) -> str | None:
    """The DejaVu Sans file matplotlib ships, or None."""
    folder = _font_dir()
    if folder:
        path = os.path.join(folder, "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf")
        if os.path.exists(path):
            return path
    return None




@lru_cache(maxsize=None)
def font(size: int = 13, bold: bool = False) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans at `size` pixels (it has the symbols we print: ε, ×, ±, −); Pillow's default otherwise."""
    path = latin_font_file(bold)
    if path:
        return ImageFont.truetype(path, size)
    return ImageFont.load_default(size=size)


LANGUAGES = ("en", "zh")
FONT_VARIABLE = "BUTTERFLY_CJK_FONT"
# Tried after the variable and fc-match, in order: Debian/Ubuntu, Fedora, Arch, macOS, Windows.
WELL_KNOWN_CJK_FONTS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJKsc-Regular.otf",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
    "/System/Library/Fonts/PingFang.ttc",
    "/System/Library/Fonts/Hiragino Sans GB.ttc",
    "C:/Windows/Fonts/msyh.ttc",
    "C:/Windows/Fonts/simhei.ttf",
)
# Family names that mark the Simplified Chinese face of a collection.
SIMPLIFIED_MARKS = (" SC", "SC ", "GB", "Simplified", "YaHei", "WenQuanYi", "SimHei", "AR PL")
CHINESE_PROBE = "中文"
FALLBACK_WARNING = ("No font with Simplified Chinese was found (set BUTTERFLY_CJK_FONT to a .ttf/.otf/.ttc file, "
                    "or install fonts-noto-cjk): the Chinese pages show figures with English words.")


@dataclass(frozen=True)
class FontFile:
    """One face of a font file: a .ttc collection holds several, `index` picks one."""

    path: str
    index: int
    family: str

    def fingerprint(self) -> str:
        """The file's identity: path, face, size and modification time."""
        stat = os.stat(self.path)
        return f"{self.path}#{self.index}:{stat.st_size}:{stat.st_mtime_ns}"


# --- finding a CJK font --------------------------------------------------------------------------

def _writes_chinese(face: ImageFont.FreeTypeFont) -> bool:
    """Whether `face` has real glyphs for Chinese: a missing glyph renders as the .notdef box,
    the same bitmap as a code point no font assigns."""
    def bitmap(text: str) -> bytes:
        mask = face.getmask(text)
        return bytes(mask) + bytes(str(mask.size), "ascii")

    missing = bitmap("\U0010FFFD")
    return all(bitmap(ch) != missing for ch in CHINESE_PROBE)


def _open_face(path: str, index: int) -> ImageFont.FreeTypeFont | None:
    try:
        return ImageFont.truetype(path, 16, index=index)
    except (OSError, ValueError):
        return None


def _simplified_face(path: str, preferred: int | None = None) -> FontFile | None:
    """The face of `path` for Simplified Chinese: in a collection, the one whose family is the SC
    one (not a monospaced variant); else `preferred`; else the first face that writes Chinese."""
    faces = []
    for index in range(64):
        face = _open_face(path, index)
        if face is None:
            break
        faces.append((index, face, face.getname()[0] or ""))
        if not path.lower().endswith((".ttc", ".otc")):
            break
    ranked = sorted(faces, key=lambda entry: (not any(mark in entry[2] for mark in SIMPLIFIED_MARKS),
                                              "Mono" in entry[2], entry[0] != preferred, entry[0]))
    for index, face, family in ranked:
        if _writes_chinese(face):
            return FontFile(path, index, family)
    return None


def _fc_match() -> tuple[str, int] | None:
    """fontconfig's best font for Simplified Chinese: (file, face index), or None."""
    if shutil.which("fc-match") is None:
        return None
    try:
        result = subprocess.run(["fc-match", "-f", "%{file}\t%{index}", ":lang=zh-cn"], capture_output=True,
                                text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    path, _, index = result.stdout.partition("\t")
    if result.returncode != 0 or not path:
        return None
    return path, int(index) if index.strip().isdigit() else 0


def find_cjk_font() -> FontFile | None:
    """Search for a font that writes Simplified Chinese (see the module docstring for the order)."""
    candidates: list[tuple[str, int | None]] = []
    if os.environ.get(FONT_VARIABLE):
        candidates.append((os.environ[FONT_VARIABLE], None))
    matched = _fc_match()
    if matched:
        candidates.append(matched)
    candidates += [(path, None) for path in WELL_KNOWN_CJK_FONTS]
    for path, index in candidates:
        if os.path.isfile(path):
            found = _simplified_face(path, index)
            if found:
                return found
    return None


@lru_cache(maxsize=1)
def cjk_font() -> FontFile | None:
    """The CJK font of this process (searched once; `cjk_font.cache_clear()` searches again)."""
    return find_cjk_font()


def _bold_sibling(font: FontFile) -> FontFile:
    """The bold face beside a regular file (NotoSansCJK-Regular.ttc -> NotoSansCJK-Bold.ttc), or the font itself."""
    name = Path(font.path).name
    for regular, bold in (("Regular", "Bold"), ("regular", "bold")):
        if regular in name:
            path = str(Path(font.path).with_name(name.replace(regular, bold)))
            if os.path.isfile(path):
                return _simplified_face(path, font.index) or font
    return font


@lru_cache(maxsize=None)
def _cjk_face(path: str, index: int, size: int) -> ImageFont.FreeTypeFont:
    # Basic layout: Chinese needs no shaping, and it lays text out several times faster than Raqm.
    return ImageFont.truetype(path, size, index=index, layout_engine=ImageFont.Layout.BASIC)


@lru_cache(maxsize=None)
def _matplotlib_family(font: FontFile, bold: FontFile) -> str:
    """Register the font files with matplotlib's font manager (once) and return the family name
    matplotlib knows the chosen face by."""
    from matplotlib import font_manager, ft2font

    for path in dict.fromkeys((font.path, bold.path)):
        font_manager.fontManager.addfont(path)
    return font_manager.ttfFontProperty(ft2font.FT2Font(font.path, face_index=font.index)).name


# --- words ---------------------------------------------------------------------------------------

class Words:
    """The phrases of one language and the fonts that write them.

    lang: the language of the phrases ('en' or 'zh'); page_lang: the language asked for (a 'zh'
    page whose Chinese cannot be written gets lang 'en' and a `fallback_warning`).
    """

    def __init__(self, lang: str, page_lang: str, font: FontFile | None, fallback_warning: str | None = None):
        self.lang = lang
        self.page_lang = page_lang
        self.font = font
        self.bold_font = _bold_sibling(font) if font else None
        self.fallback_warning = fallback_warning
        self._column = LANGUAGES.index(lang)

    def __repr__(self) -> str:
        return f"Words({self.lang!r}, page {self.page_lang!r}, font {self.font.path if self.font else 'DejaVu Sans'})"

    def t(self, key: str, /, **fields) -> str:
        """The phrase `key` in this language with `fields` filled in.

        An entry may hold (singular, plural) for a language; the field `count` chooses.
        """
        text = PHRASES[key][self._column]
        if isinstance(text, tuple):
            text = text[0] if fields.get("count") == 1 else text[1]
        return text.format(**fields)

    def unit(self, unit: str, index: int | None = None) -> str:
        """'filter 3' / '卷积核 3' (or without the index, the bare word) for unit 'filter' or 'channel'."""
        word = self.t(f"unit_{unit}")
        return word if index is None else self.t("unit_index", unit=word, index=index)

    def units(self, unit: str, count: int) -> str:
        """'3 filters' / '3 个卷积核'."""
        return self.t(f"units_{unit}", count=count)

    def join(self, items) -> str:
        """A list: 'a, b, c' / 'a、b、c'."""
        return self.t("list_separator").join(str(item) for item in items)

    def ordinal(self, number: int) -> str:
        """'the third' for 3, 'the 12th' for 12; '第 3 个' in Chinese."""
        names = self.t("ordinals").split("|")
        if 1 <= number <= len(names) and names[number - 1]:
            return names[number - 1]
        suffix = "th" if number % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
        return self.t("ordinal_number", number=number, suffix=suffix)

    def face(self, size: int = 13, bold: bool = False):
        """The Pillow font of this language at `size` pixels."""
        if self.font is None:
            return font(size, bold)
        chosen = self.bold_font if bold else self.font
        return _cjk_face(chosen.path, chosen.index, size)

    def families(self, symbols_first: bool = False) -> list[str]:
        """matplotlib font families, first choice first: the CJK font, DejaVu Sans for symbols.

        symbols_first puts DejaVu Sans first, for formulas: CJK fonts draw ‖ and ′ full-width."""
        if self.font is None:
            return ["DejaVu Sans"]
        families = [_matplotlib_family(self.font, self.bold_font), "DejaVu Sans"]
        return families[::-1] if symbols_first else families


def words_for(lang: str) -> Words:
    """The words of a site language: 'en', or 'zh' (English with a `fallback_warning` when no
    font can write Chinese)."""
    if lang not in LANGUAGES:
        raise ValueError(f"figures speak {', '.join(LANGUAGES)}, not {lang!r}")
    if lang == "en":
        return ENGLISH
    font = cjk_font()
    if font is None:
        return Words("en", "zh", None, FALLBACK_WARNING)
    return _chinese(font)


@lru_cache(maxsize=4)
def _chinese(font: FontFile) -> Words:
    return Words("zh", "zh", font)


def font_fingerprint(lang: str) -> str:
    """The identity of the font files the figures of `lang` are written with (path, size,
    modification time): a cache key that changes when a CJK font appears or changes."""
    words = words_for(lang)
    if words.font is None:
        path = latin_font_file()
        if path is None:
            return "pillow-default"
        stat = os.stat(path)
        return f"{path}:{stat.st_size}:{stat.st_mtime_ns}"
    return "|".join(dict.fromkeys((words.font.fingerprint(), words.bold_font.fingerprint())))


ENGLISH = Words("en", "en", None)


# --- the phrases ---------------------------------------------------------------------------------
# key: (English, Chinese). Fields in braces are filled by Words.t; a (singular, plural) pair is
# chosen by the field `count`. Numbers are formatted by the caller, the same in both languages.
PHRASES: dict[str, tuple] = {
    # grammar
    "list_separator": (", ", "、"),
    "clause_separator": ("; ", "；"),
    "ordinals": ("the first|the second|the third|the fourth|the fifth|the sixth|the seventh|the eighth|"
                 "the ninth|the tenth", ""),
    "ordinal_number": ("the {number}{suffix}", "第 {number} 个"),
    "unit_filter": ("filter", "卷积核"),
    "unit_channel": ("channel", "通道"),
    "unit_filter_plural": ("filters", "卷积核"),
    "unit_channel_plural": ("channels", "通道"),
    "unit_index": ("{unit} {index}", "{unit} {index}"),
    "units_filter": (("{count} filter", "{count} filters"), "{count} 个卷积核"),
    "units_channel": (("{count} channel", "{count} channels"), "{count} 个通道"),
    "unit_ordinal_filter": ("{layer}, filter {index} ({ordinal})", "{layer} 的第 {number} 个卷积核（索引 {index}）"),
    "unit_ordinal_channel": ("{layer}, channel {index} ({ordinal})", "{layer} 的第 {number} 个通道（索引 {index}）"),
    "selection_all": ("all {units}", "全部 {units}"),
    "selection_first": ("first {shown} of {units}", "前 {shown} 个（共 {units}）"),
    "selection_most_changed": ("{shown} most changed of {units}", "变化最大的 {shown} 个（共 {units}）"),
    "selection_chosen": ("{shown} chosen of {units}", "选定的 {shown} 个（共 {units}）"),

    # words shared by several figures
    "input": ("input", "输入"),
    "output": ("output", "输出"),
    "image": ("image", "图片"),
    "original": ("original", "原图"),
    "adversarial": ("adversarial", "对抗样本"),
    "difference": ("difference", "差值"),
    "difference_panel": ("adversarial − original", "差值（对抗样本 − 原图）"),
    "difference_legend": ("difference (adversarial − original)", "差值（对抗样本 − 原图）"),
    "colour": ("colour", "彩色"),
    "greyscale": ("greyscale", "灰度"),
    "low": ("low", "低"),
    "high": ("high", "高"),
    "min_max": ("min – max: {range}", "取值范围：{range}"),
    "value_range": ("{lo} – {hi}", "{lo} 至 {hi}"),
    "scale_range": ("scale {range}", "色标 {range}"),
    "same_scale": ("same scale", "同一色标"),
    "scale_limit_share": ("scale ±{limit}: {share}% of this map's range, as in every frame",
                          "色标 ±{limit}（每帧都取该特征图取值范围的 {share}%）"),
    "grey_no_change": ("grey = no change", "灰色 = 无变化"),
    "perturbation_times": ("perturbation ×{factor}", "扰动 ×{factor}"),
    "epsilon_axis": ("ε (largest change per pixel, pixel range 0–1)", "ε（每个像素的最大改变量，像素范围 0–1）"),
    "no_change": ("no change", "无变化"),
    "no_change_anywhere": ("no change in any layer", "各层均无变化"),
    "ends": ("from {first} to {last} (largest {largest})", "从 {first} 到 {last}（最大 {largest}）"),

    # the page's own figures (composed elsewhere from these functions)
    "overview_title_clean": ("Inside the network: the original image", "网络内部：原图"),
    "overview_title_adversarial": ("Inside the network: the adversarial image", "网络内部：对抗样本"),
    "butterfly_title": ("Attack vs noise, layer by layer: {image}", "逐层比较攻击与噪声：{image}"),
    "input_alt": ("The input the model saw for {title}: {width}×{height} pixels, {kind}, enlarged without smoothing.",
                  "模型看到的“{title}”输入：{width}×{height} 像素，{kind}，放大时未做平滑处理。"),

    # network overview
    "row_index": ("index", "编号"),
    "output_top": ("top {k} of {total} classes", "前 {k} 类（共 {total} 类）"),
    "overview_subtitle": ("Columns: layers from input to output. Rows: one feature map per filter (convolutions) "
                          "or channel (other layers), as named under each layer. Each layer has its own colour "
                          "scale, printed under its name.",
                          "每列是一层，从输入到输出；每行是同一编号的特征图：卷积层对应一个卷积核，其他层对应一个通道"
                          "（见各层下方的说明）。每层使用各自的色标，数值范围标在层名下方。"),
    "overview_legend": ("colour: each layer's own scale", "颜色：每层各自的色标"),
    "overview_alt_input": ("input {shape}", "输入 {shape}"),
    "overview_alt_layer": ("{layer} {shape} ({note}), scale {scale}", "{layer} {shape}（{note}），色标 {scale}"),
    "overview_alt": ("{title}. Feature maps of every layer from input to output, one column per layer: {layers}. "
                     "Output, top {k}: {prediction}.",
                     "{title}。从输入到输出各层的特征图，每层一列：{layers}。输出概率最高的 {k} 类：{prediction}。"),

    # comparison grid
    "grid_title": ("{layer} ({shape}): original vs adversarial", "{layer}（{shape}）：原图与对抗样本对比"),
    "grid_note": ("{selection}; original and adversarial share one scale {scale}; difference = adversarial − "
                  "original on ±{limit} (red higher, blue lower)",
                  "{selection}；原图与对抗样本共用一个色标 {scale}；差值 = 对抗样本 − 原图，色标 ±{limit}"
                  "（红色表示升高，蓝色表示降低）"),
    "grid_captions": ("numbered from 0; under each map: its own min – max",
                      "编号从 0 开始；每个特征图下方：该图自身的取值范围"),
    "grid_legend_shared": ("{layer}: original & adversarial", "{layer}：原图与对抗样本"),
    "grid_alt": ("{layer} ({shape}), {selection}: rows show the original maps, the adversarial maps and their "
                 "difference for {units} {indices}. Original and adversarial share the scale {scale}; the "
                 "difference ranges {diff} on a red-blue scale of ±{limit}.",
                 "{layer}（{shape}），{selection}：三行依次为原图的特征图、对抗样本的特征图和二者的差值，"
                 "所示{units}为 {indices}。原图与对抗样本共用色标 {scale}；差值范围为 {diff}，"
                 "红蓝色标 ±{limit}。"),

    # first-layer filters
    "weight": ("weight", "权重"),
    "weights": ("weights", "权重"),
    "red": ("red", "红色通道"),
    "green": ("green", "绿色通道"),
    "blue": ("blue", "蓝色通道"),
    "kernels_title": (("{layer}: the {count} learned {size} filter", "{layer}: the {count} learned {size} filters"),
                      "{layer}：学到的 {count} 个 {size} 卷积核"),
    "kernels_note": ((("{count} input channel; one scale ±{limit} for all weights (red positive, blue negative, "
                       "near-white zero)"),
                      ("{count} input channels; one scale ±{limit} for all weights (red positive, blue negative, "
                       "near-white zero)")),
                     "{count} 个输入通道；所有权重共用一个色标 ±{limit}（红色为正，蓝色为负，接近白色为零）"),
    "kernels_captions": ("numbered from 0; under each filter: its own min – max",
                         "编号从 0 开始；每个卷积核下方：其自身的取值范围"),
    "kernels_alt": ("The {count} learned {size} filters of {layer} (input channels: {channels}), coloured red for "
                    "positive and blue for negative weights on one scale of ±{limit}; weights range {range}.",
                    "{layer} 学到的 {count} 个 {size} 卷积核（输入通道数：{channels}），正权重为红色、负权重为蓝色，"
                    "共用色标 ±{limit}；权重范围 {range}。"),

    # zoom crop
    "zoom_heading_chosen": ("Close-up of the chosen map: {which}", "选定特征图的特写：{which}"),
    "zoom_heading_most_changed": ("Close-up of the map that changed most: {which}", "变化最大的特征图特写：{which}"),
    "zoom_note": ("{shape} map enlarged ×{factor}, each square one activation; colours on the layer's scales, as in "
                  "its comparison grid",
                  "{shape} 的特征图放大 {factor} 倍，每个方块是一个激活值；颜色沿用该层的色标，与该层的对比图一致"),
    "zoom_box": ("box: the {size} window where this map changed most (rows {rows}, columns {columns}, counted from "
                 "0), {share}% of "
                 "its total |difference|",
                 "方框：该特征图中变化最大的 {size} 区域（行 {rows}，列 {columns}，从 0 起数），占该图差值绝对值总和的 {share}%"),
    "zoom_no_change": ("this map did not change", "该特征图没有变化"),
    "zoom_legend_shared": ("original & adversarial ({layer} scale)", "原图与对抗样本（{layer} 色标）"),
    "zoom_legend_difference": ("difference ({layer} scale)", "差值（{layer} 色标）"),
    "zoom_alt_box": ("The box marks the {size} region where this map changed most, rows {rows} and columns "
                     "{columns} (counted from 0), holding {share}% of its total change.",
                     "方框标出该特征图变化最大的 {size} 区域（行 {rows}，列 {columns}，从 0 起数），占其总变化量的 {share}%。"),
    "zoom_alt_no_change": ("The map did not change.", "该特征图没有变化。"),
    "zoom_alt": ("{heading}: the {shape} map enlarged, original beside adversarial beside their difference. Original "
                 "ranges {clean}, adversarial {adv}, on the layer's shared scale {scale}; the difference ranges "
                 "{diff} on the layer's ±{limit}. {box}",
                 "{heading}：放大显示这个 {shape} 的特征图，原图、对抗样本和二者的差值并排。原图取值 {clean}，"
                 "对抗样本取值 {adv}，共用该层色标 {scale}；差值范围 {diff}，色标为该层的 ±{limit}。{box}"),

    # perturbation
    "perturbation_caption": ("grey = no change; max |δ| = {largest} ({levels}/255)",
                             "灰色 = 无变化；最大 |δ| = {largest}（{levels}/255）"),
    "perturbation_alt_change_subtle": ("the perturbation amplified ×{factor} (mid-grey means no change; the largest "
                                       "change is {largest}, {levels} of 255 levels) and the adversarial image, which "
                                       "looks almost the same as the original",
                                       "放大 {factor} 倍的扰动（中灰色表示没有变化；最大变化为 {largest}，即 255 级中的 "
                                       "{levels} 级），以及看上去与原图几乎一样的对抗样本"),
    "perturbation_alt_change_plain": ("the perturbation amplified ×{factor} (mid-grey means no change; the largest "
                                      "change is {largest}, {levels} of 255 levels) and the adversarial image",
                                      "放大 {factor} 倍的扰动（中灰色表示没有变化；最大变化为 {largest}，即 255 级中的 "
                                      "{levels} 级），以及对抗样本"),
    "perturbation_alt_same": ("an all-grey perturbation and the adversarial image: the two images are identical",
                              "全灰的扰动和对抗样本：两张图片完全相同"),
    "perturbation_alt": ("The original {shape} {kind} image, {change}.", "{shape} 的{kind}原图、{change}。"),
    "perturbation_alt_captions": (" Original: {clean}. Adversarial: {adv}.", "原图：{clean}。对抗样本：{adv}。"),

    # probability bars
    "bars_title": ("Prediction before and after the attack", "攻击前后的预测"),
    "probability_percent": ("probability (%)", "概率（%）"),
    "bars_alt": ("Bar chart of the {k} most probable classes. Original image: {clean}; adversarial image: {adv}. "
                 "{rows}.",
                 "概率最高的 {k} 个类别的条形图。原图：{clean}；对抗样本：{adv}。{rows}。"),

    # butterfly plot and attack/noise ratios
    "feature_maps_panel": ("feature-map layers", "特征图各层"),
    "output_panel": ("output\n(probabilities)", "输出\n（概率）"),
    "attack_label": ("attack (adversarial perturbation)", "攻击（对抗扰动）"),
    "noise_label": ("random sign noise of the same size", "同样大小的随机符号噪声"),
    "relative_change_axis": ("relative change", "相对变化"),
    "relative_change_formula": ("relative change = ‖f(x′) − f(x)‖ / ‖f(x)‖", "相对变化 = ‖f(x′) − f(x)‖ / ‖f(x)‖"),
    "ratio_label": ("attack ÷ noise", "攻击 ÷ 噪声"),
    "output_ratio": ("{name}\nattack ÷ noise\n= {ratio}", "{name}\n攻击 ÷ 噪声\n= {ratio}"),
    "ratio_axis": ("attack ÷ noise", "攻击 ÷ 噪声"),
    "ratio_reference": ("= 1: as much as noise", "等于 1：与噪声相当"),
    "butterfly_alt": ("{title}. Line charts on log scales over the layers {first} to {last}. Relative change under "
                      "the attack: {attack}. Under random sign noise of the same size: {noise}. Ratio attack ÷ noise: "
                      "{ratio}. Layers: {layers}.",
                      "{title}。对数坐标折线图，横轴为从 {first} 到 {last} 的各层。攻击下的相对变化：{attack}。"
                      "同样大小的随机符号噪声下：{noise}。攻击 ÷ 噪声之比：{ratio}。各层：{layers}。"),
    "butterfly_alt_output": (" Shown apart, the output probabilities ({name}): attack {attack}, noise {noise}, "
                             "ratio {ratio}.",
                             "单独显示的输出概率（{name}）：攻击 {attack}，噪声 {noise}，比值 {ratio}。"),
    "ratio_each_image": ("one line per image", "每条细线是一张图片"),
    "ratio_median": ("median of {count} images", "{count} 张图片的中位数"),
    "ratio_alt_image": ("{image}: {ends}", "{image}：{ends}"),
    "ratio_alt": ("{title}. Line chart, log scale: the ratio attack ÷ noise per feature-map layer, one thin line per "
                  "image and a bold median line over {count} images, with a dotted line at 1 (as much as noise). "
                  "Median: {median}. {images}.",
                  "{title}。对数坐标折线图：各特征图层上攻击与噪声之比，每张图片一条细线，粗线为 {count} 张图片的"
                  "中位数，点线为 1（与噪声相当）。中位数：{median}。{images}。"),

    # epsilon strip
    "strip_title": ("How large ε must be to change the prediction", "改变预测所需的 ε"),
    "median_short": ("median {value}", "中位数 {value}"),
    "not_fooled_panel": ("unchanged\nup to ε = {epsilon}", "到 ε = {epsilon}\n预测仍未变"),
    "strip_alt_range": (" at ε from {lo} to {hi} (median {median})", "（ε 从 {lo} 到 {hi}，中位数 {median}）"),
    "strip_alt_group": ("{group}: the prediction changed for {fooled} of {count} images{range}, {missed} unchanged",
                        "{group}：{count} 张图片中 {fooled} 张的预测被改变{range}，{missed} 张未变"),
    "strip_alt": ("{title}. One row per model, one dot per image at the ε the search found; images whose prediction "
                  "never changed up to ε = {epsilon} are drawn apart at the right. {groups}.",
                  "{title}。每个模型一行，每张图片一个点，位于搜索找到的 ε 处；直到 ε = {epsilon} 预测仍未改变的"
                  "图片单独画在右侧。{groups}。"),

    # robustness
    "robustness_title": ("Accuracy as the perturbation grows", "扰动增大时的准确率"),
    "attack_method": ("{method} attack", "{method} 攻击"),
    "noise_short": ("random sign noise", "随机符号噪声"),
    "test_accuracy_axis": ("test accuracy (%)", "测试准确率（%）"),
    "subset_some": ("{samples} of {total} test images", "测试集 {total} 张图片中的 {samples} 张"),
    "subset_all": ("all {total} test images", "全部 {total} 张测试图片"),
    "robustness_alt": ("Line chart of test accuracy ({subset}) against ε from {lo} to {hi}: under the {method} attack "
                       "it goes from {attack_from} to {attack_to}; with random sign noise of the same size from "
                       "{noise_from} to {noise_to}.",
                       "测试准确率（{subset}）随 ε 从 {lo} 增至 {hi} 变化的折线图：{method} 攻击下从 {attack_from} "
                       "变为 {attack_to}；同样大小的随机符号噪声下从 {noise_from} 变为 {noise_to}。"),

    # training
    "training": ("training", "训练集"),
    "validation": ("test", "测试集"),
    "epoch": ("epoch", "轮次"),
    "epoch_number": ("epoch {epoch}", "第 {epoch} 轮"),
    "loss_axis": ("loss", "损失"),
    "accuracy_axis": ("accuracy (%)", "准确率（%）"),
    "validation_accuracy": ("test accuracy", "测试准确率"),
    "curve_alt_training_loss": ("training loss {first} → {last}", "训练损失 {first} → {last}"),
    "curve_alt_validation_loss": ("test loss {first} → {last}", "测试损失 {first} → {last}"),
    "curve_alt_training_accuracy": ("training accuracy {first}% → {last}%", "训练准确率 {first}% → {last}%"),
    "curve_alt_validation_accuracy": ("test accuracy {first}% → {last}%", "测试准确率 {first}% → {last}%"),
    "curves_alt": (("Two line charts over {count} epoch, loss on the left and accuracy on the right: {parts}.",
                    "Two line charts over {count} epochs, loss on the left and accuracy on the right: {parts}."),
                   "{count} 轮训练的两幅折线图，左为损失，右为准确率：{parts}。"),
    "training_heading": ("Epoch {epoch} of {last} · {label} {value}", "第 {epoch} 轮（共 {last} 轮）· {label} {value}"),
    "training_footer": ("rows: maps 0, 1, … of each layer (the first {count}); each layer keeps one colour scale for "
                        "all epochs (printed under its name)",
                        "每行：各层编号为 0、1、… 的特征图（只显示前 {count} 个）；每层在所有轮次中使用同一个色标"
                        "（数值范围标在层名下方）"),
    "training_footer_all": ("rows: maps 0, 1, … of each layer; each layer keeps one colour scale for all epochs "
                            "(printed under its name)",
                            "每行：各层编号为 0、1、… 的特征图；每层在所有轮次中使用同一个色标（数值范围标在层名下方）"),
    "training_alt_thinned": (" ({shown} of the {total} epochs shown)", "（显示 {total} 轮中的 {shown} 轮）"),
    "training_alt": ("Animation of {count} frames, epochs {first} to {last}{thinned}: the probe image's feature maps "
                     "in layers {layers} as the network trains, beside the {label}, which goes from {start} to {end}.",
                     "共 {count} 帧的动画，第 {first} 至 {last} 轮{thinned}：训练过程中同一张测试图片在 {layers} 各层的"
                     "特征图，旁边是{label}，从 {start} 变为 {end}。"),

    # epsilon sweep
    "top_classes": ("top {k} classes", "概率最高的 {k} 类"),
    "sweep_prediction": ("prediction: {label} {probability}", "预测：{label} {probability}"),
    "sweep_flip": ("the prediction changes here: {before} → {after} at ε = {epsilon}",
                   "预测在此改变：{before} → {after}（ε = {epsilon}）"),
    "sweep_answer": ("the search (from ε = {start} in steps of {step}) stops here, at ε = {epsilon}",
                     "搜索（从 ε = {start} 起，每步加 {step}）在此停止：ε = {epsilon}"),
    "sweep_answer_plain": ("the epsilon search stops here, at ε = {epsilon}", "ε 搜索在此停止：ε = {epsilon}"),
    "sweep_not_fooled": ("unchanged: the prediction stays {label} up to ε = {epsilon}",
                         "预测未变：直到 ε = {epsilon} 仍是 {label}"),
    "sweep_fooled": ("changed: the prediction first changed at ε = {epsilon}", "预测已变：在 ε = {epsilon} 时首次改变"),
    "sweep_unchanged": ("prediction unchanged ({label})", "预测未变（{label}）"),
    "strip_flip": ("prediction changes at {epsilon}", "预测改变于 {epsilon}"),
    "strip_answer": ("search stops at {epsilon}", "搜索停止于 {epsilon}"),
    "sweep_alt_flip": ("the prediction changes from {before} to {after} at ε = {epsilon} (frame {frame}, red border, "
                       "held longer)",
                       "预测在 ε = {epsilon} 时由 {before} 变为 {after}（第 {frame} 帧，红色边框，停留更久）"),
    "sweep_alt_not_fooled": ("the prediction stays {label} throughout", "预测始终是 {label}"),
    "sweep_alt_answer": ("; the epsilon search stops at ε = {epsilon} (frame {frame}, orange border)",
                         "；ε 搜索停止于 ε = {epsilon}（第 {frame} 帧，橙色边框）"),
    "sweep_alt": ("Animation of {count} frames: the image, the perturbation (amplified ×{factor}) and the top {k} "
                  "class probabilities as ε grows from {lo} to {hi}; {outcome}.",
                  "共 {count} 帧的动画：随着 ε 从 {lo} 增至 {hi}，显示图片、扰动（放大 {factor} 倍）和概率最高的 "
                  "{k} 个类别；{outcome}。"),

    # propagation
    "propagation_heading": ("Layer {index} of {count}: {layer} ({shape}), {which}{role}",
                            "第 {index} 层（共 {count} 层）：{layer}（{shape}），{which}{role}"),
    "propagation_role_most_changed": (", the most changed", "（变化最大）"),
    "propagation_role_chosen": (", the chosen one", "（选定）"),
    "propagation_change": ("relative change of the layer ‖f(x′) − f(x)‖ / ‖f(x)‖ = {value}",
                           "该层的相对变化 ‖f(x′) − f(x)‖ / ‖f(x)‖ = {value}"),
    "change_strip_title": ("relative change per layer (log scale), input → output",
                           "各层的相对变化（对数坐标），输入 → 输出"),
    "propagation_alt": ("Animation of {count} frames, one per layer from {first} to {last}: in each, one map "
                        "({shown}), "
                        "original beside adversarial beside their difference, with the layer's relative change, "
                        "which goes {changes}.",
                        "共 {count} 帧的动画，每层一帧，从 {first} 到 {last}：每帧显示一个特征图（{shown}），原图、"
                        "对抗样本和二者的差值并排，并标出该层的相对变化，依次为 {changes}。"),
}
