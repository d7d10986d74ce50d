"""Write the hostile-input corpus: small malformed files the loader must survive.

Run ``python tests/hostile/make_corpus.py`` to regenerate the files beside this
script. The output is deterministic (seeded random bytes, fixed zip timestamps), so
tests/test_hostile_input.py can check that the committed files match this script.
Cases too big to commit (a 1 MB cell, 10,000 columns, very long lines) and
those that are not files (a directory) are built by the test itself.
"""

from __future__ import annotations

import codecs
import io
import random
import struct
import sys
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from xml.sax.saxutils import escape

HERE = Path(__file__).resolve().parent

Cell = str | int | float | bool | tuple[str, str] | tuple[str, str, str] | None


def _column(index: int) -> str:
    """Return Excel letters for 0-based ``index``."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def _xml_cell(ref: str, value: Cell) -> str:
    """Render one <c> element; a ('e', text) tuple is an Excel error value.

    A (type, formula, cached value) tuple is a formula with the value Excel saved:
    type "n" for a number, "str" for text, "e" for an error.
    """
    if value is None:
        return ""
    if isinstance(value, tuple) and len(value) == 3:
        kind, formula, cached = value
        kind_attr = "" if kind == "n" else f' t="{kind}"'
        return f'<c r="{ref}"{kind_attr}><f>{escape(formula)}</f><v>{escape(cached)}</v></c>'
    if isinstance(value, tuple):
        kind, text = value
        return f'<c r="{ref}" t="{kind}"><v>{escape(text)}</v></c>'
    if isinstance(value, bool):
        return f'<c r="{ref}" t="b"><v>{int(value)}</v></c>'
    if isinstance(value, int | float):
        return f'<c r="{ref}"><v>{value!r}</v></c>'
    return f'<c r="{ref}" t="inlineStr"><is><t xml:space="preserve">{escape(value)}</t></is></c>'


def _zip(parts: dict[str, str | bytes]) -> bytes:
    """Zip ``parts`` with a fixed timestamp so the bytes never change."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in parts.items():
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            # OpenDocument requires its mimetype entry stored uncompressed.
            stored = name == "mimetype"
            info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            archive.writestr(info, content)
    return buffer.getvalue()


def xlsx(
    sheets: Sequence[dict[int, Sequence[Cell]]],
    *,
    names: Sequence[str] = (),
    hidden: Sequence[str] = (),
) -> bytes:
    """Build a minimal .xlsx by hand: one dict {row number: cells} per worksheet.

    ``names`` names the sheets (default Sheet1, Sheet2...); those in ``hidden`` are hidden.
    """
    titles = [*names, *(f"Sheet{n}" for n in range(len(names) + 1, len(sheets) + 1))]
    ns = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    rel_ns = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    doc_type = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    sheet_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
    book_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"
    overrides = "".join(
        f'<Override PartName="/xl/worksheets/sheet{n}.xml" ContentType="{sheet_type}"/>'
        for n in range(1, len(sheets) + 1)
    )
    parts: dict[str, str | bytes] = {
        "[Content_Types].xml": (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" '
            'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            f'<Override PartName="/xl/workbook.xml" ContentType="{book_type}"/>'
            f"{overrides}</Types>"
        ),
        "_rels/.rels": (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            f'<Relationship Id="rId1" Type="{doc_type}/officeDocument" Target="xl/workbook.xml"/>'
            "</Relationships>"
        ),
        "xl/workbook.xml": (
            f'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="{ns}" xmlns:r="{rel_ns}">'
            "<sheets>"
            + "".join(
                f'<sheet name="{escape(title)}" sheetId="{n}"'
                + (' state="hidden"' if title in hidden else "")
                + f' r:id="rId{n}"/>'
                for n, title in enumerate(titles, start=1)
            )
            + "</sheets></workbook>"
        ),
        "xl/_rels/workbook.xml.rels": (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            + "".join(
                f'<Relationship Id="rId{n}" Type="{doc_type}/worksheet" '
                f'Target="worksheets/sheet{n}.xml"/>'
                for n in range(1, len(sheets) + 1)
            )
            + "</Relationships>"
        ),
    }
    for n, rows in enumerate(sheets, start=1):
        body = "".join(
            f'<row r="{number}">'
            + "".join(_xml_cell(f"{_column(i)}{number}", v) for i, v in enumerate(cells))
            + "</row>"
            for number, cells in sorted(rows.items())
        )
        parts[f"xl/worksheets/sheet{n}.xml"] = (
            f'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="{ns}">'
            f"<sheetData>{body}</sheetData></worksheet>"
        )
    return _zip(parts)


def ods(sheets: dict[str, Sequence[Sequence[str | float | None]]]) -> bytes:
    """Build a minimal OpenDocument spreadsheet by hand: rows of cells per named sheet."""
    office = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
    table = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"
    text = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"

    def cell(value: str | float | None) -> str:
        if value is None:
            return "<table:table-cell/>"
        if isinstance(value, float):
            return (
                f'<table:table-cell office:value-type="float" office:value="{value!r}">'
                f"<text:p>{value!r}</text:p></table:table-cell>"
            )
        return (
            '<table:table-cell office:value-type="string">'
            f"<text:p>{escape(value)}</text:p></table:table-cell>"
        )

    body = "".join(
        f'<table:table table:name="{escape(name)}">'
        + "".join(
            "<table:table-row>" + "".join(cell(v) for v in row) + "</table:table-row>"
            for row in rows
        )
        + "</table:table>"
        for name, rows in sheets.items()
    )
    content = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<office:document-content xmlns:office="{office}" xmlns:table="{table}" '
        f'xmlns:text="{text}" office:version="1.2"><office:body><office:spreadsheet>'
        f"{body}</office:spreadsheet></office:body></office:document-content>"
    )
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" '
        'manifest:version="1.2">'
        '<manifest:file-entry manifest:full-path="/" '
        'manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
        "</manifest:manifest>"
    )
    return _zip(
        {
            "mimetype": "application/vnd.oasis.opendocument.spreadsheet",
            "META-INF/manifest.xml": manifest,
            "content.xml": content,
        }
    )


def _biff(kind: int, payload: bytes = b"") -> bytes:
    """Return one BIFF8 record: type, length, payload."""
    return struct.pack("<HH", kind, len(payload)) + payload


def _biff_bof(substream: int) -> bytes:
    # BIFF8 (0x0600); substream 0x0005 is the workbook globals, 0x0010 a worksheet.
    return _biff(0x0809, struct.pack("<HHHHII", 0x0600, substream, 0x0DBB, 0x07CC, 0, 0x06))


def xls(
    sheets: dict[str, Sequence[Sequence[str | float | None]]], *, hidden: Sequence[str] = ()
) -> bytes:
    """Build a minimal legacy .xls by hand: a BIFF8 stream in an OLE2 compound file.

    Text goes through the shared string table (LABELSST), numbers as NUMBER
    records, as Excel 97-2003 writes them.
    """
    strings: list[str] = []
    streams: list[bytes] = []
    for rows in sheets.values():
        cells = b""
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                if isinstance(value, float):
                    cells += _biff(0x0203, struct.pack("<HHHd", r, c, 0, value))
                elif value is not None:
                    if value not in strings:
                        strings.append(value)
                    cells += _biff(0x00FD, struct.pack("<HHHI", r, c, 0, strings.index(value)))
        streams.append(_biff_bof(0x0010) + cells + _biff(0x000A))
    table = b"".join(struct.pack("<HB", len(s), 0) + s.encode("latin-1") for s in strings)
    sst = _biff(0x00FC, struct.pack("<II", len(strings), len(strings)) + table)

    def globals_part(offsets: Sequence[int]) -> bytes:
        bound = b"".join(
            _biff(
                0x0085,
                struct.pack("<IBB", offset, 1 if name in hidden else 0, 0)
                + struct.pack("<BB", len(name), 0)
                + name.encode("latin-1"),
            )
            for name, offset in zip(sheets, offsets, strict=True)
        )
        return _biff_bof(0x0005) + bound + sst + _biff(0x000A)

    start = len(globals_part([0] * len(sheets)))
    offsets = [start + sum(len(s) for s in streams[:i]) for i in range(len(streams))]
    return _ole2(globals_part(offsets) + b"".join(streams))


def _ole2(workbook: bytes) -> bytes:
    """Wrap a BIFF stream as the "Workbook" stream of a version 3 compound file."""
    end, free, fat_sector, none = 0xFFFFFFFE, 0xFFFFFFFF, 0xFFFFFFFD, 0xFFFFFFFF
    # Streams under 4,096 bytes would go to the mini stream: pad to stay in sectors.
    stream = workbook.ljust(4096, b"\0")
    stream += bytes(-len(stream) % 512)
    sectors = len(stream) // 512
    fat = [fat_sector, end, *(3 + i if i < sectors - 1 else end for i in range(sectors))]
    fat += [free] * (128 - len(fat))
    header = (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
        + bytes(16)
        + struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6)
        + bytes(6)
        # directory sectors, FAT sectors, first directory sector, transaction,
        # mini stream cutoff, first mini FAT sector, mini FAT sectors, DIFAT
        + struct.pack("<IIIIIIIII", 0, 1, 1, 0, 4096, end, 0, end, 0)
        + struct.pack("<I", 0)
        + struct.pack("<I", free) * 108
    )

    def entry(name: str, kind: int, child: int, start: int, size: int) -> bytes:
        raw = name.encode("utf-16-le") + b"\0\0" if name else b""
        return (
            raw.ljust(64, b"\0")
            + struct.pack("<HBBIII", len(raw), kind, 1, none, none, child)
            + bytes(36)
            + struct.pack("<III", start, size, 0)
        )

    directory = (
        entry("Root Entry", 5, 1, end, 0)
        + entry("Workbook", 2, none, 2, len(stream))
        + entry("", 0, none, 0, 0) * 2
    )
    return header + struct.pack("<128I", *fat) + directory + stream


GOOD_XLSX = xlsx(
    [
        {
            1: ["course_id", "user_login_name", "note"],
            2: [42.0, "ann@contoso.com", "first"],
            3: [43, "bob@contoso.com", None],
        }
    ]
)


def _random(seed: int, size: int, *, low: int = 0) -> bytes:
    """Return ``size`` reproducible random bytes, each at least ``low``."""
    rng = random.Random(seed)
    return bytes(rng.randrange(low, 256) for _ in range(size))


CASES: dict[str, Callable[[], bytes]] = {
    # -- empty-ish
    "empty.csv": lambda: b"",
    "whitespace_only.csv": lambda: b"  \r\n\t \n   \n",
    "bom_only.csv": lambda: codecs.BOM_UTF8,
    "bom_and_blank_lines.csv": lambda: codecs.BOM_UTF8 + b"\r\n\r\n",
    "only_delimiters.csv": lambda: b",,,\n;;;\n|||\n\t\t\n",
    "header_only.csv": lambda: b"course_id,user_login_name\r\n",
    "header_only_no_newline.csv": lambda: b"course_id;user_login_name",
    # -- not text at all
    "nul_bytes.csv": lambda: b"course_id,user_login_name\n1,ann\x00@contoso.com\n",
    "random_bytes.csv": lambda: _random(1, 4096),
    "random_bytes_no_nul.csv": lambda: _random(2, 4096, low=1),
    "png_named.csv": lambda: b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + _random(3, 200),
    "gzip_named.csv": lambda: b"\x1f\x8b\x08\x00" + _random(4, 300),
    # -- encodings
    "cp1252.csv": lambda: "course_id,user_login_name,name\n7,zoe@contoso.com,Zoë\n".encode(
        "cp1252"
    ),
    "utf16_bom_tabs.txt": lambda: (
        "course_id\tuser_login_name\tname\r\n7\tzoe@contoso.com\tZoë\r\n8\tbo@contoso.com\tBo\r\n"
    ).encode("utf-16"),
    "utf16le_no_bom.csv": lambda: "course_id,user_login_name\n7,zoe@contoso.com\n".encode(
        "utf-16-le"
    ),
    "undefined_cp1252_byte.csv": lambda: b"course_id,user_login_name\n7,zo\x81@contoso.com\n",
    "mixed_encodings.csv": lambda: (
        "course_id,user_login_name,name\n7,a@contoso.com,Zoë\n".encode()
        + "8,b@contoso.com,Zoë\n".encode("cp1252")
    ),
    # -- quoting and shape
    "unbalanced_quote.csv": lambda: b'course_id,user_login_name\n1,ann\n2,"bob\n3,cy\n',
    "unbalanced_quote_header.csv": lambda: b'"course_id,user_login_name\n1,ann\n',
    "too_many_cells.csv": lambda: b"course_id,user_login_name,note\n1,ann,x\n2,bob,y,z\n",
    "too_many_after_quoted_newline.csv": lambda: (
        b'course_id,user_login_name\n1,"ann\nsmith"\n\n2,bob,extra\n'
    ),
    "fewer_cells.csv": lambda: b"course_id,user_login_name,action,note\n1,ann\n2,bob,enroll\n",
    "crlf.csv": lambda: b"course_id,user_login_name\r\n1,ann\r\n\r\n2,bob\r\n",
    "cr_only.csv": lambda: b"course_id,user_login_name\r1,ann\r\r2,bob\r",
    "mixed_line_endings.csv": lambda: b"course_id,user_login_name\r\n1,ann\n2,bob\r\r3,cy\r\n",
    "leading_blank_lines.csv": lambda: b"\n  \n,,\ncourse_id,user_login_name\n1,ann\n",
    "quoted_newlines.csv": lambda: (
        b'course_id,user_login_name,message\n1,ann,"line one\nline two"\n2,bob,"a\r\nb"\n'
    ),
    # -- headers
    "duplicate_extra_headers.csv": lambda: b"course_id,user_login_name,note,note,note\n1,a,x,y,z\n",
    "ambiguous_user_aliases.csv": lambda: b"course,E-Mail,UPN\n1,a@x.com,a@x.com\n",
    "ambiguous_course_aliases.csv": lambda: b"Course ID;course_id;user\n1;1;ann\n",
    "unknown_headers_only.csv": lambda: b"foo,bar,baz\n1,2,3\n",
    "missing_user.csv": lambda: b"course_id,name\n1,ann\n",
    "empty_header_cells.csv": lambda: b"course_id,user_login_name,,\n1,ann,,x\n2,bob,,\n",
    "header_named_row.csv": lambda: b"row,course_id,user_login_name\n9,1,ann\n",
    "formula_headers.csv": lambda: (
        b"course_id,user_login_name,=Notes,@Manager,+Phone,-Cost\r\n"
        b"1,ann@contoso.com,=1+1,@x,+44,-3\r\n"
    ),
    "html_named.csv": lambda: (
        b"<html><body><table><tr><td>course_id</td></tr></table></body></html>\n"
    ),
    # -- values
    "excel_error_values.csv": lambda: b"course_id,user_login_name\n#N/A,ann\n#REF!,#VALUE!\n",
    "floats_as_text.csv": lambda: b"course_id,user_login_name\n42.0,ann\n1e3,bob\n",
    "nbsp_and_spaces.csv": lambda: "course_id;user_login_name\n 1\u00a0; ann@x.com \n".encode(),
    # -- workbooks
    "xlsx_no_sheets.xlsx": lambda: xlsx([]),
    "xlsx_empty_sheet.xlsx": lambda: xlsx([{}]),
    "xlsx_values.xlsx": lambda: xlsx(
        [
            {
                3: ["Course ID", "E-Mail", "Score", "Flag", "Check"],
                4: [42.0, "ann@contoso.com", 3.5, True, ("e", "#N/A")],
                6: [43, " bob@contoso.com ", 7.25, False, ("e", "#REF!")],
            }
        ]
    ),
    "xlsx_formulas.xlsx": lambda: xlsx(
        [
            {
                1: ["course_id", "user_login_name", "Due", "Cost"],
                2: [
                    ("n", "100+1", "101"),
                    ("str", 'LOWER("ANN@CONTOSO.COM")', "ann@contoso.com"),
                    ("e", "VLOOKUP(A2,Lists!A:B,2,0)", "#N/A"),
                    ("n", "1/4", "0.25"),
                ],
            }
        ]
    ),
    # One stray cell at the sheet's last cell: A1 to XFD1048576 is 17 billion cells.
    "xlsx_stray_far_cell.xlsx": lambda: xlsx(
        [
            {
                1: ["course_id", "user_login_name"],
                2: [1, "ann@contoso.com"],
                1_048_576: [*([None] * 16_383), "x"],
            }
        ]
    ),
    "xlsx_named.csv": lambda: GOOD_XLSX,
    "truncated.xlsx": lambda: GOOD_XLSX[: len(GOOD_XLSX) // 2],
    "zip_not_xlsx.xlsx": lambda: _zip({"readme.txt": "not a workbook"}),
    "opendocument.ods": lambda: _zip(
        {"mimetype": "application/vnd.oasis.opendocument.spreadsheet", "content.xml": "<x/>"}
    ),
    # Excel keeps a password-protected workbook in an OLE2 file with this stream.
    # -- sheets as HR keeps them: title rows, an instructions sheet, wrapped headers
    "title_rows.csv": lambda: (
        b"Onboarding December 2026,,\n"
        b'"Note: send to IT, by Friday",,\n'
        b",,\n"
        b'"Course\nID", E-mail\xc2\xa0 ,"Start\n  date"\n'
        b"7,ann@contoso.com,2026-12-01\n"
        b"8,bob@contoso.com,2026-12-02\n"
    ),
    "title_rows_semicolons.csv": lambda: (
        b"Hires, December 2026\n\ncourse;user;department\n7;ann@contoso.com;Sales, EMEA\n"
    ),
    "header_below_row_20.csv": lambda: (
        "".join(f"note {n}\n" for n in range(1, 21)).encode() + b"course_id,user\n1,ann\n"
    ),
    "header_under_many_blank_lines.csv": lambda: (
        b"\n" * 30 + b"Title\n" + b",,\n" * 30 + b"course_id,user\n1,ann\n"
    ),
    "ragged_unquoted_address.csv": lambda: (
        b"course_id,user_login_name,address\n"
        b"7,ann@contoso.com,Main Street 1\n"
        b"7,bob@contoso.com,Elm Road 2, Springfield\n"
        b"8,cy@contoso.com,\n"
    ),
    "many_unknown_headers.csv": lambda: (
        ",".join(f"Unrecognised column number {n}" for n in range(60)).encode() + b"\n"
    ),
    "xlsx_hr_workbook.xlsx": lambda: xlsx(
        [
            {1: ["How to fill in this workbook"], 2: ["One row per new hire, on Hires."]},
            {
                1: ["Onboarding December 2026"],
                2: ["Note: send to IT by Friday"],
                4: ["Course\nID", " E-mail\u00a0", "Start\n  date", "Check"],
                5: [7, "ann@contoso.com", "2026-12-01", ("e", "#N/A")],
                7: [8, "bob@contoso.com", "2026-12-02", None],
            },
            {1: ["course", "user"], 2: [9, "old@contoso.com"]},
            {1: ["course", "user"], 2: [10, "lists@contoso.com"]},
        ],
        names=["Instructions", "Hires", "Old hires", "Lists"],
        hidden=["Lists"],
    ),
    "xlsx_header_only_on_hidden_sheet.xlsx": lambda: xlsx(
        [{1: ["Read me"]}, {1: ["course", "user"], 2: [1, "a@contoso.com"]}],
        names=["Instructions", "Data"],
        hidden=["Data"],
    ),
    "opendocument_hires.ods": lambda: ods(
        {
            "Instructions": [["Fill in the next sheet"]],
            "Hires": [["Hires"], [], ["Course ID", "E-mail"], [7.0, "ann@contoso.com"]],
        }
    ),
    "legacy_hires.xls": lambda: xls(
        {
            "Read me": [["Fill in Hires"]],
            "Hires": [["Onboarding"], [], ["Course ID", "E-mail"], [7.0, "ann@contoso.com"]],
            "Lists": [["course", "user"], [9.0, "lists@contoso.com"]],
        },
        hidden=["Lists"],
    ),
    "encrypted.xlsx": lambda: (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
        + bytes(504)
        + "EncryptedPackage".encode("utf-16-le")
        + _random(5, 512)
    ),
    "legacy.xls": lambda: b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + _random(6, 1024),
}


def build() -> dict[str, bytes]:
    """Return every corpus file's name and bytes."""
    return {name: make() for name, make in CASES.items()}


def main(argv: Sequence[str]) -> int:
    """Write the corpus into the directory given, or beside this script."""
    target = Path(argv[1]) if len(argv) > 1 else HERE
    for name, content in build().items():
        (target / name).write_bytes(content)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
