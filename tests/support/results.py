"""results: turn a meson testlog.json or a pytest junit XML file into one line per result,
for tests/run.sh to count.

    results.py meson build/normal/meson-logs/testlog.json
    results.py junit build/normal/pytest-integration.xml

Each line is KIND<TAB>NAME<TAB>DETAIL with KIND one of PASS, FAIL, SKIP. A meson test
is one result (SKIP when it exited 77); a cmocka case that called skip() inside a test
that passed is one SKIP more (cmocka exits 0 then, so meson says OK), with what the
case printed before skipping as its detail. A pytest testcase is one result: FAIL if
it has a failure or an error (setup and teardown included), SKIP if skipped (xfail
too: it did not show the test passing), else PASS. Exit status 2 when the file cannot
be read or parsed: the caller counts that as a failure of its own.
"""

import json
import re
import sys
import xml.etree.ElementTree as ET

# "[  SKIPPED ] name", but not the summary's "[  SKIPPED ] 1 test(s), listed below:"
CMOCKA_SKIPPED = re.compile(r"\[  SKIPPED \] (?!\d+ test\(s\))(\w+)")
CMOCKA_RUN = "[ RUN      ] %s\n"


def one_line(text):
    text = " ".join((text or "").split())
    return text if len(text) <= 300 else text[:297] + "..."


def cmocka_skip_reason(out, case):
    """The last line a skipped cmocka case printed between its RUN and SKIPPED lines."""
    start = out.find(CMOCKA_RUN % case)
    if start < 0:
        return ""
    start += len(CMOCKA_RUN % case)
    end = out.find("[  SKIPPED ] %s" % case, start)
    lines = [ln.strip() for ln in out[start:end if end >= 0 else start].splitlines()]
    lines = [ln for ln in lines if ln]
    return lines[-1] if lines else ""


def meson(path):
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            t = json.loads(line)
            name, result = t["name"], t["result"]
            out = (t.get("stdout") or "") + "\n" + (t.get("stderr") or "")
            if result in ("OK", "EXPECTEDFAIL"):
                yield "PASS", name, ""
            elif result == "SKIP":
                yield "SKIP", name, "exit status 77"
            else:
                yield "FAIL", name, "%s, exit status %s" % (result, t.get("returncode"))
            seen = set()
            for m in CMOCKA_SKIPPED.finditer(out):
                case = m.group(1)
                if case not in seen:
                    seen.add(case)
                    yield "SKIP", "%s: %s" % (name, case), one_line(
                        cmocka_skip_reason(t.get("stdout") or "", case) or "cmocka skip()")


def junit(path):
    root = ET.parse(path).getroot()
    for case in root.iter("testcase"):
        name = "%s::%s" % (case.get("classname") or "", case.get("name") or "")
        bad = case.find("failure")
        if bad is None:
            bad = case.find("error")
        skipped = case.find("skipped")
        if bad is not None:
            yield "FAIL", name, one_line(bad.get("message") or bad.text or "")
        elif skipped is not None:
            yield "SKIP", name, one_line(skipped.get("message") or skipped.text or "")
        else:
            yield "PASS", name, ""


def main(argv):
    if len(argv) != 3 or argv[1] not in ("meson", "junit"):
        print("usage: results.py meson|junit FILE", file=sys.stderr)
        return 2
    try:
        rows = list((meson if argv[1] == "meson" else junit)(argv[2]))
    except (OSError, ValueError, KeyError, ET.ParseError) as e:
        print("results.py: %s: %s" % (argv[2], e), file=sys.stderr)
        return 2
    for kind, name, detail in rows:
        print("%s\t%s\t%s" % (kind, name.replace("\t", " "), detail.replace("\t", " ")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
