"""virsh's command grammar: option tables, parsing and help.

Each command is a table of options in virsh's order. Kinds:
  "bool"    a flag (--live)
  "string"  --name VALUE, also --name=VALUE
  "number"  the same, a non-negative integer
A "required" option may also be given by position. As in virsh, the
non-bool options fill from positional words in table order, so
`migrate vm1 godwit:///session tcp://h:4444` sets --migrateuri. Errors read
as virsh's, so scripts that parse them keep working.
"""


class UsageError(Exception):
    pass


class Opt:
    def __init__(self, name, kind, help, required=False):
        self.name = name
        self.kind = kind
        self.help = help
        self.required = required


def B(name, help):
    return Opt(name, "bool", help)


def S(name, help, required=False):
    return Opt(name, "string", help, required)


def N(name, help, required=False):
    return Opt(name, "number", help, required)


DOMAIN = S("domain", "domain name, id or uuid", required=True)


class Command:
    def __init__(self, name, summary, description, opts, run, extra=None):
        """extra: names of options that gwsh has and virsh (libvirt 9.0)
        has not, each with the reason (the comparison test reads it)."""
        self.name = name
        self.summary = summary
        self.description = description
        self.opts = opts
        self.run = run
        self.extra = extra or {}

    def opt(self, name):
        for o in self.opts:
            if o.name == name:
                return o
        return None

    def parse(self, words, rest=None):
        """Returns {name: value} for the options given (bools True).
        rest: a list that takes positional words left over (commands that
        pass words through); without it they are an error."""
        got = {}
        positional = [o for o in self.opts if o.kind != "bool"]
        i = 0
        while i < len(words):
            w = words[i]
            i += 1
            if w.startswith("--") and len(w) > 2:
                name, eq, val = w[2:].partition("=")
                o = self.opt(name)
                if o is None:
                    raise UsageError("command '%s' doesn't support option "
                                     "--%s" % (self.name, name))
                if o.kind == "bool":
                    if eq:
                        raise UsageError("option --%s doesn't take a value"
                                         % name)
                    got[name] = True
                    continue
                if not eq:
                    if i >= len(words):
                        raise UsageError("expected syntax: --%s <%s>" % (
                            name, o.kind))
                    val = words[i]
                    i += 1
                got[name] = self._value(o, val)
                continue
            if w == "--":
                continue
            slot = next((o for o in positional if o.name not in got), None)
            if slot is None and rest is not None:
                rest.append(w)
                continue
            if slot is None:
                raise UsageError("unexpected data '%s'" % w)
            got[slot.name] = self._value(slot, w)
        for o in self.opts:
            if o.required and o.name not in got:
                if o.kind == "number":
                    raise UsageError("command '%s' requires --%s option"
                                     % (self.name, o.name))
                raise UsageError("command '%s' requires <%s> option"
                                 % (self.name, o.name))
        return got

    @staticmethod
    def _value(o, val):
        if o.kind != "number":
            return val
        if not val.isdigit() or int(val) >= 1 << 63:
            raise UsageError("Numeric value '%s' for <%s> option is "
                             "malformed or out of range" % (val, o.name))
        return int(val)

    def synopsis(self):
        parts = [self.name]
        for o in self.opts:
            if o.required:
                parts.append("<%s>" % o.name)
            elif o.kind == "bool":
                parts.append("[--%s]" % o.name)
            else:
                parts.append("[--%s <%s>]" % (o.name, o.kind))
        return " ".join(parts)

    def help(self):
        out = ["  NAME", "    %s - %s" % (self.name, self.summary), "",
               "  SYNOPSIS", "    " + self.synopsis(), "",
               "  DESCRIPTION", "    " + self.description, "",
               "  OPTIONS"]
        for o in self.opts:
            if o.required:
                left = "[--%s] <%s>" % (o.name, o.kind)
            elif o.kind == "bool":
                left = "--%s" % o.name
            else:
                left = "--%s <%s>" % (o.name, o.kind)
            out.append("    %-15s  %s" % (left, o.help))
        return "\n".join(out) + "\n\n"
