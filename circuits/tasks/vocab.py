"""Word lists and templates of the built-in tasks, importable so tokenizers can cover them.

Every word is stored WITHOUT its leading space; generators insert it with one (" Mary") and
keep only words that are a single token under the tokenizer they are given. A word-level
tokenizer for a model organism covers a task if it has one token for " " + word for each
word below, and for the literal text of the templates (see `IOI_TEMPLATES`,
`GREATER_THAN_TEMPLATES`, `DOCSTRING_*`).

Sources: IOI names, places, objects and templates from Wang et al. (2022) as used by
O'Neill & Bui (2024); greater-than nouns from Hanna et al. (2023); docstring variable
names and description nouns from Heimersheim & Janiak (2023), as shipped with ACDC.
"""

from __future__ import annotations


def _words(text: str) -> tuple[str, ...]:
    """The whitespace-separated words of a block of text, in order."""
    return tuple(text.split())


# --- IOI (Wang et al. 2022) -------------------------------------------------------------

IOI_NAMES: tuple[str, ...] = _words(
    """
    Michael Christopher Jessica Matthew Ashley Jennifer Joshua Amanda Daniel David James
    Robert John Joseph Andrew Ryan Brandon Jason Justin Sarah William Jonathan Stephanie
    Brian Nicole Nicholas Anthony Heather Eric Elizabeth Adam Megan Melissa Kevin Steven
    Thomas Timothy Christina Kyle Rachel Laura Lauren Amber Brittany Danielle Richard
    Kimberly Jeffrey Amy Crystal Michelle Tiffany Jeremy Benjamin Mark Emily Aaron Charles
    Rebecca Jacob Stephen Patrick Sean Erin Jamie Kelly Samantha Nathan Sara Dustin Paul
    Angela Tyler Scott Katherine Andrea Gregory Erica Mary Travis Lisa Kenneth Bryan Lindsey
    Kristen Jose Alexander Jesse Katie Lindsay Shannon Vanessa Courtney Christine Alicia
    Cody Allison Bradley Samuel
    """
)

IOI_PLACES: tuple[str, ...] = (
    "store",
    "garden",
    "restaurant",
    "school",
    "hospital",
    "office",
    "house",
    "station",
)

IOI_OBJECTS: tuple[str, ...] = (
    "ring",
    "kiss",
    "bone",
    "basketball",
    "computer",
    "necklace",
    "drink",
    "snack",
)

# Placeholders: [IO] indirect object (the answer), [S] subject (named twice), [PLACE],
# [OBJECT]. Each template stops before the answer. BABA names S first, ABBA names IO first.
IOI_BABA_TEMPLATES: tuple[str, ...] = (
    "Then, [S] and [IO] went to the [PLACE]. [S] gave a [OBJECT] to",
    "Then, [S] and [IO] had a lot of fun at the [PLACE]. [S] gave a [OBJECT] to",
    "Then, [S] and [IO] were working at the [PLACE]. [S] decided to give a [OBJECT] to",
    "Then, [S] and [IO] were thinking about going to the [PLACE]. [S] wanted to give a [OBJECT] to",
    "Then, [S] and [IO] had a long argument, and afterwards [S] said to",
    "After [S] and [IO] went to the [PLACE], [S] gave a [OBJECT] to",
    "When [S] and [IO] got a [OBJECT] at the [PLACE], [S] decided to give it to",
    "When [S] and [IO] got a [OBJECT] at the [PLACE], [S] decided to give the [OBJECT] to",
    "While [S] and [IO] were working at the [PLACE], [S] gave a [OBJECT] to",
    "While [S] and [IO] were commuting to the [PLACE], [S] gave a [OBJECT] to",
    "After the lunch, [S] and [IO] went to the [PLACE]. [S] gave a [OBJECT] to",
    "Afterwards, [S] and [IO] went to the [PLACE]. [S] gave a [OBJECT] to",
    "Then, [S] and [IO] had a long argument. Afterwards [S] said to",
    "The [PLACE] [S] and [IO] went to had a [OBJECT]. [S] gave it to",
    "Friends [S] and [IO] found a [OBJECT] at the [PLACE]. [S] gave it to",
)

IOI_ABBA_TEMPLATES: tuple[str, ...] = tuple(
    t.replace("[S] and [IO]", "[IO] and [S]", 1) for t in IOI_BABA_TEMPLATES
)

IOI_TEMPLATES: tuple[str, ...] = IOI_ABBA_TEMPLATES + IOI_BABA_TEMPLATES

# --- Greater-than (Hanna et al. 2023) ----------------------------------------------------

GREATER_THAN_NOUNS: tuple[str, ...] = _words(
    """
    abduction accord affair agreement appraisal assaults assessment attack attempts campaign
    captivity case challenge chaos clash collaboration coma competition confrontation
    consequence conspiracy construction consultation contact contract convention cooperation
    custody deal decline decrease demonstrations development disagreement disorder dispute
    domination dynasty effect effort employment endeavor engagement epidemic evaluation
    exchange existence expansion expedition experiments fall fame flights friendship growth
    hardship hostility illness impact imprisonment improvement incarceration increase
    insurgency invasion investigation journey
    """
)

# "{XX}" is the century (two digits, e.g. 17) and "{YY}" the two last digits of the start
# year; the year must tokenise as [" XX", "YY"]. "seed" is O'Neill & Bui's wording,
# "hanna" the original of Hanna et al. (no "the year" before the end century).
GREATER_THAN_TEMPLATES: dict[str, str] = {
    "seed": "The {noun} lasted from the year {XX}{YY} to the year {XX}",
    "hanna": "The {noun} lasted from the year {XX}{YY} to {XX}",
}

GREATER_THAN_CENTURIES: tuple[int, ...] = tuple(range(12, 20))
"""Centuries XX of the years 1200-1999."""

GREATER_THAN_NEGATIVE_YY: str = "01"
"""Two-digit year ending that replaces YY in negatives: every later year is possible."""

# --- Docstring (Heimersheim & Janiak 2023) -----------------------------------------------

DOCSTRING_VARIABLE_NAMES: tuple[str, ...] = _words(
    """
    data name file value test new result line user key default request path output node
    item url model response text version function log string field start number values sub
    index error current context image message check json create size event state row obj
    parser end files form query fields instance label run action target array code num table
    source msg config first required options ret update module status group content client
    filename results last read command val base format color settings order found count match
    tag title parent call session token server host date description mode expected project
    info valid page header option task shape load names port old resource root
    """
)

DOCSTRING_DESCRIPTION_WORDS: tuple[str, ...] = _words(
    """
    price control action cost issue process position course minute education type research
    subject girl age father force order value act matter health lot street patient class mind
    church condition paper bank century section activity table building sense sort staff team
    student language town plan management morning committee product practice evidence ground
    letter foot boy back game food union role event land art support range stage trade voice
    arm club field history parent account material care manager project record example
    training window air light wife quality rule pound story tax worker data model nature bed
    hospital method unit detail date wall computer amount bit president chapter property son
    director leader south application board king production operation share lord contract
    picture test security election source colour future site loss shop animal heart purpose
    standard page doctor factor hair love music charge pattern design piece population tree
    knowledge performance plant pressure fire environment size analysis rest success thought
    region list relation set space statement demand sea step capital choice player station
    film feature income individual cup technology machine cell degree energy growth treatment
    mile function risk sound task top resource floor science style hall horse response
    character user answer dog look brother argument season bill element glass duty claim fund
    leg park title note daughter sun box river profit division stone post client help image
    oil sector attack direction seat employment goal sign ability campaign fish item medium
    show version drug library press surface blood culture memory return bar talk access deal
    star text cause mouth payment context reference second article chair earth object agency
    card collection communication public document weight bird rock call edge miss option
    quarter stock aid concept match network radio target finger forest race sex ball crime
    message peace review scale scene speech band expression hill reader owner trust truth turn
    file past start trial balance copy league length wind front move pain spirit train contact
    official strength cash gas shape agent pair protection rise driver master meaning vote
    adult play fig route speed credit impact danger flower half path track video aim bag
    comment content distance gold link skin boat dad prison sight wine offer writer hole
    package confidence generation key phone sample ship threat volume author background engine
    entry stuff yard bus regulation row song category consumer football meal wood bridge
    description existence flat lip session sheet code flight limit plate rain respect writing
    capacity dream selection spring while definition egg examination mark notice output will
    address bottom kid middle neck run acid assembly birth ear error module store transfer
    wave channel component cut fee lead weather block brain guide program screen connection
    cover map metal phase pool search sequence sky sum trip cat display gallery gate heat
    location reading theme drive faith hell learning opening priority spot tool castle coal
    flow lane motion release total wing border index pocket ring billion device engineering
    fruit lake leaf pub request square tone walk chain circle creation fall present shot
    fashion god mass panel fan iron origin ticket bone cancer chief editor fuel general height
    round vision warning being cross living rail working column finding gap grass plane root
    score shadow shock touch database formation male ref resident resolution topic break camp
    currency phrase thinking coat mill stress boot command depth female frame framework holder
    ice inch port protein rose saving string wheel bishop cycle export hat load mode setting
    stairs travel average camera focus green guard input layer poll sleep suit bread cake
    efficiency peak self angle bay bid cloud custom dollar variable zone actor chip core final
    frequency gain guy relative rent reply secret shirt apple instance intelligence lad pipe
    anger disk fight hero journal left mail pace paragraph platform print rank sand scope
    shift stream chemical clock delay host human count mission pack seed tail tie watch dark
    hold mine net tip dimension operator professional shell storage summary tube conduct
    determination drop import label percent pot proof unity win wire bell comfort complex
    draft grade lift mouse movie profile standing belt black check joy local pit red register
    storm album ban bench button cap chart coin dust folk margin pole stand stick tin
    """
)

# The prompt opens with a newline, as in the original generator. "{def_args}" is
# ", "-joined, "{description}" and each ":param" description are " "-joined words.
DOCSTRING_DEF_LINE: str = "\ndef {method}(self, {def_args}):\n"
DOCSTRING_DESCRIPTION_LINE: str = '    """{description}\n\n'
DOCSTRING_PARAM_LINE: str = "    :param {arg}: {description}\n"
DOCSTRING_FINAL_PARAM: str = "    :param"
