#!/usr/bin/env python3
"""Writes glint's catalog of Glance's options (gateway/src/config/glance_options.txt) from the
sample glance-api.conf that ships in Glance's PyPI package (oslo-config-generator's output:
every option commented out, with its type and its deprecated names).

    pip download --no-deps -d /tmp/glance glance==33.0.0
    unzip -o -d /tmp/glance /tmp/glance/glance-33.0.0-py3-none-any.whl \
        'glance-33.0.0.data/data/etc/glance/glance-api.conf'
    scripts/glance_options.py /tmp/glance/glance-33.0.0.data/data/etc/glance/glance-api.conf \
        33.0.0 > gateway/src/config/glance_options.txt

With --check CATALOG it instead lists the sample's options the catalog lacks (exit 1 if any):
scripts/test runs that against the sample of the Glance it installs.

Output: `[section]` lines, then one line per option: `name type [old_group/old_name,...]`.
"""
import re
import sys

TYPES = {
    "boolean value": "bool", "integer value": "int", "string value": "str",
    "list value": "list", "dict value": "dict", "floating point value": "float",
    "host address value": "str", "port value": "int", "uri value": "str",
    "host domain value": "str", "IP address value": "str", "unknown value": "str",
}


def read(path):
    sections = {}
    order = []
    section = None
    kind = "str"
    deprecated = []
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        m = re.match(r"^\[(.+)\]\s*$", line)
        if m:
            section = m.group(1)
            if section not in sections:
                sections[section] = {}
                order.append(section)
            kind, deprecated = "str", []
            continue
        m = re.match(r"^#\s*\(([a-zA-Z ]+)\)\s*$", line) or re.search(r"\(([a-zA-Z ]+ value)\)\s*$", line)
        if m and m.group(1) in TYPES:
            kind = TYPES[m.group(1)]
            continue
        if re.match(r"^#\s*\(multi valued\)\s*$", line):
            kind = "multi"
            continue
        m = re.match(r"^# Deprecated group/name - \[([^\]]+)\]/(\S+)", line)
        if m:
            deprecated.append(f"{m.group(1)}/{m.group(2)}")
            continue
        m = re.match(r"^#([A-Za-z_][A-Za-z0-9_.\-]*) =", line)
        if m and section:
            sections[section].setdefault(m.group(1), (kind, deprecated))
            kind, deprecated = "str", []
    return order, sections


def main():
    args = sys.argv[1:]
    if len(args) == 3 and args[0] == "--check":
        catalog = set()
        section = None
        for line in open(args[1], encoding="utf-8"):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("["):
                section = line[1:-1]
                continue
            catalog.add((section, line.split()[0]))
        _, sections = read(args[2])
        missing = [(s, o) for s, opts in sections.items() for o in opts if (s, o) not in catalog]
        for s, o in missing:
            print(f"not in glint's catalog: [{s}] {o}")
        total = sum(len(o) for o in sections.values())
        print(f"{total - len(missing)} of {total} options of the sample are in the catalog")
        sys.exit(1 if missing else 0)
    if len(args) != 2:
        sys.exit(__doc__)
    order, sections = read(args[0])
    print(f"# Glance {args[1]}'s options, from its sample glance-api.conf (scripts/glance_options.py).")
    print("# name type [deprecated names]")
    for section in order:
        print(f"[{section}]")
        for name, (kind, deprecated) in sections[section].items():
            tail = f" {','.join(deprecated)}" if deprecated else ""
            print(f"{name} {kind}{tail}")


main()
