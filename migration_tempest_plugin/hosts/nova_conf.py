"""Set options in a compute host's nova.conf, leaving the rest as it was.

The file belongs to the deployment (devstack, an operator's lab): comments,
ordering and repeated keys of multi-valued options must survive, so this
edits the lines of one section instead of re-rendering the whole file with
configparser, which would drop comments and collapse repeated keys.  The
original text is kept by the caller and written back verbatim afterwards.
Pure: the caller reads and writes the file.
"""

import re

_SECTION = re.compile(r'^\s*\[([^\]]+)\]\s*$')
_OPTION = re.compile(r'^\s*([A-Za-z0-9_.-]+)\s*[=:]')


def render_value(value):
    if isinstance(value, bool):
        return 'true' if value else 'false'
    text = str(value)
    if '\n' in text:
        raise ValueError('multi-line value: %r' % text)
    return text


def set_options(text, section, options):
    """`text` with each of `options` ({name: value}) set in `section`.

    An option already present has its (first) line replaced and any
    repeats removed; a missing one is appended to the section; a missing
    section is appended to the file.
    """
    lines = text.splitlines()
    wanted = {name: '%s = %s' % (name, render_value(value))
              for name, value in options.items()}
    out = []
    current = None
    done = set()

    def close_section():
        # Missing options go right after the section's last option line.
        if current == section:
            at = len(out)
            while at and not out[at - 1].strip():
                at -= 1
            missing = [wanted[n] for n in options if n not in done]
            out[at:at] = missing
            done.update(options)

    for line in lines:
        match = _SECTION.match(line)
        if match:
            close_section()
            current = match.group(1).strip()
            out.append(line)
            continue
        option = _OPTION.match(line)
        if current == section and option and option.group(1) in wanted:
            name = option.group(1)
            if name not in done:
                out.append(wanted[name])
                done.add(name)
            continue
        out.append(line)
    close_section()
    if section not in _sections(lines):
        if out and out[-1].strip():
            out.append('')
        out.append('[%s]' % section)
        out.extend(wanted[n] for n in options)
    return '\n'.join(out) + '\n'


def _sections(lines):
    return {m.group(1).strip() for m in map(_SECTION.match, lines) if m}


def get_option(text, section, name):
    """The last value of `name` in `section`, or None."""
    current = None
    value = None
    for line in text.splitlines():
        match = _SECTION.match(line)
        if match:
            current = match.group(1).strip()
            continue
        option = _OPTION.match(line)
        if current == section and option and option.group(1) == name:
            value = line.split(line[option.end() - 1], 1)[1].strip()
    return value
