"""Documentation checks: release notes, links between docs, the diagram.

- ``reno lint`` over releasenotes/notes (skipped only when reno is not
  installed), plus the structure reno itself accepts silently (a section
  that is not a list, an empty item, unbalanced ``literal`` markup);
- every relative link in README.md and doc/*.md points to an existing
  file, and a ``#fragment`` into a markdown file names one of its headings
  (GitHub's anchor rules);
- doc/architecture.svg is well-formed XML with an <svg> root.
"""

import collections
import importlib.util
import os
import pathlib
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOC = ROOT / 'doc'
NOTES = ROOT / 'releasenotes' / 'notes'

# reno's default sections (reno/defaults.py) and the prelude.
RENO_SECTIONS = {'features', 'issues', 'upgrade', 'deprecations', 'critical',
                 'security', 'fixes', 'other'}
PRELUDE = 'prelude'

FENCE_RE = re.compile(r'^\s*(```|~~~)')
# [text](target) and ![alt](target); target up to whitespace or ')'.
LINK_RE = re.compile(r'!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?'
                     r'(?:\s+"[^"]*")?\s*\)')
INLINE_CODE_RE = re.compile(r'(`+)(?:(?!\1).)+?\1')
HEADING_RE = re.compile(r'^(#{1,6})\s+(.*?)\s*#*\s*$')


def markdown_files():
    return [ROOT / 'README.md'] + sorted(DOC.glob('*.md'))


def _prose_lines(text):
    """(line number, line) outside fenced code blocks."""
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE_RE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line


def links(path):
    """(line number, target) of every markdown link outside code."""
    out = []
    for number, line in _prose_lines(path.read_text(encoding='utf-8')):
        line = INLINE_CODE_RE.sub('', line)
        for match in LINK_RE.finditer(line):
            out.append((number, match.group(1)))
    return out


def slug(heading):
    """GitHub's anchor for a heading text."""
    text = re.sub(r'!?\[([^\]]*)\]\([^)]*\)', r'\1', heading)  # links
    text = text.replace('`', '').strip().lower()
    text = re.sub(r'[^\w\- ]', '', text)
    return text.replace(' ', '-')


def anchors(path):
    seen = collections.Counter()
    out = set()
    for _, line in _prose_lines(path.read_text(encoding='utf-8')):
        match = HEADING_RE.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        out.add(base if not seen[base] else '%s-%d' % (base, seen[base]))
        seen[base] += 1
    return out


def is_external(target):
    return re.match(r'^[a-z][a-z0-9+.-]*:', target, re.I) is not None


def _rel(path):
    return os.path.relpath(path, ROOT)


def broken_links(files):
    problems = []
    for path in files:
        for number, target in links(path):
            if is_external(target):
                continue
            where = '%s:%d' % (_rel(path), number)
            file_part, _, fragment = target.partition('#')
            dest = (path.parent / file_part).resolve() if file_part else path
            if not dest.exists():
                problems.append('%s: link %r: %s does not exist'
                                % (where, target, _rel(dest)))
                continue
            if fragment and dest.suffix == '.md' and \
                    fragment not in anchors(dest):
                problems.append('%s: link %r: no heading with anchor #%s '
                                'in %s' % (where, target, fragment,
                                           _rel(dest)))
    return problems


class TestLinks:
    def test_every_relative_link_resolves(self):
        files = markdown_files()
        assert len(files) > 5, files
        problems = broken_links(files)
        assert not problems, 'broken links:\n' + '\n'.join(problems)

    def test_checker_finds_a_broken_link(self, tmp_path):
        # The checker itself, on a document with known mistakes.
        (tmp_path / 'other.md').write_text('# Some Title (`x`)\n## Twice\n'
                                           '## Twice\n')
        doc = tmp_path / 'doc.md'
        doc.write_text(
            '[ok](other.md) [ok](other.md#some-title-x) '
            '[ok](other.md#twice-1) [ext](https://example.org/x.md) '
            '[self](#top)\n'
            '# Top\n'
            '`[not a link](missing-in-code.md)`\n'
            '```\n[not a link](missing-in-fence.md)\n```\n'
            '[bad](missing.md) ![img](gone.svg) [frag](other.md#nope)\n')
        problems = broken_links([doc])
        assert len(problems) == 3, problems
        assert "'missing.md'" in problems[0]
        assert "'gone.svg'" in problems[1]
        assert '#nope' in problems[2]

    def test_slug_follows_github(self):
        assert slug('Options (`[fencing]`)') == 'options-fencing'
        assert slug('The simulated cloud (`nova-ha-sim`)') == \
            'the-simulated-cloud-nova-ha-sim'
        assert slug('14. Troubleshooting') == '14-troubleshooting'


class TestArchitectureDiagram:
    def test_svg_is_well_formed(self):
        tree = ElementTree.parse(DOC / 'architecture.svg')
        root = tree.getroot()
        assert root.tag == '{http://www.w3.org/2000/svg}svg', root.tag
        texts = ' '.join(t.text or '' for t in root.iter(
            '{http://www.w3.org/2000/svg}text'))
        for word in ('evacuator', 'journal', 'coordinator', 'BMC',
                     'nova-scheduler'):
            assert word in texts, word

    def test_architecture_page_embeds_it(self):
        targets = [t for _, t in links(DOC / 'architecture.md')]
        assert 'architecture.svg' in targets


def _notes():
    return sorted(NOTES.glob('*.yaml'))


class TestReleaseNotes:
    def test_notes_exist(self):
        assert _notes(), 'no release notes in %s' % NOTES

    @pytest.mark.parametrize('path', _notes(), ids=lambda p: p.name)
    def test_note_structure(self, path):
        data = yaml.safe_load(path.read_text(encoding='utf-8'))
        assert isinstance(data, dict) and data, '%s: not a mapping' % path
        for section, value in data.items():
            assert section in RENO_SECTIONS | {PRELUDE}, (
                '%s: unknown section %r' % (path.name, section))
            items = [value] if section == PRELUDE else value
            assert isinstance(items, list) and items, (
                '%s: section %s must be a non-empty list' % (path.name,
                                                             section))
            for item in items:
                assert isinstance(item, str) and item.strip(), (
                    '%s: %s: empty or non-text item %r'
                    % (path.name, section, item))
                assert item.count('``') % 2 == 0, (
                    '%s: %s: unbalanced ``literal`` in %r'
                    % (path.name, section, item))

    def test_one_prelude(self):
        preludes = [p.name for p in _notes()
                    if PRELUDE in yaml.safe_load(p.read_text())]
        assert len(preludes) == 1, preludes

    def test_reno_lint(self):
        if importlib.util.find_spec('reno') is None:
            pytest.skip('reno is not installed (test-requirements.txt); '
                        'release notes not linted')
        if shutil.which('git') is None or not (ROOT / '.git').exists():
            pytest.skip('reno lint needs the git checkout of nova-ha')
        proc = subprocess.run(
            [sys.executable, '-c', 'import sys; from reno import main; '
             'sys.exit(main.main())', 'lint'],
            cwd=ROOT, capture_output=True, text=True, timeout=120)
        output = proc.stdout + proc.stderr
        assert proc.returncode == 0, output
        assert 'unrecognized section' not in output, output
        assert 'UID collision' not in output, output
