"""gwsh: a virsh-compatible command line for godwit domains.

Modules: qmp (the QMP client), cmdtable (virsh's option grammar), hosts
(run directory, local and ssh hosts), migparams (virsh flags -> the
capabilities and parameters of each side, with libvirt's checks), migrate
(the migration driver), jobinfo (domjobinfo and the progress line), record
(sampling a migration for plots), commands (every gwsh command).
"""
