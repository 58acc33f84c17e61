"""The ``ketasim`` command line: run scenarios, browse the drug catalog, validate the model.

    ketasim run [FILE] [--out DIR] [--overwrite] [--format table|json]
                [--subjects/--no-subjects] [--confirm-large] [--engine NAME]
                [--jobs N | --cluster local:N | --scheduler ADDRESS] [--chunk-size N]
                [--resume]
    ketasim power [FILE] [--n 10,20,40,80] [--replicates 200] [--endpoint madrs.change]
                  [--time "1 d"] [--alpha 0.05] [--engine fast] [--format table|json]
                  [--jobs N | --cluster local:N | --scheduler ADDRESS]
    ketasim predictors [FILE] [--bootstrap 1000] [--subjects N] [--format table|json]
    ketasim sensitivity [FILE] [--method morris|sobol|efast] [--n N] [--parameters GLOBS]
                        [--output READOUT@TIME[:ARM[ vs ARM]]] [--mode typical|population]
                        [--out DIR] [--jobs N | --cluster local:N | --scheduler ADDRESS]
    ketasim drugs [NAME]
    ketasim validate [--out DIR] [--case NAME] [--jobs N | --cluster local:N |
                     --scheduler ADDRESS]
    ketasim export-sbml [FILE] -o MODEL.xml [--cohort NAME|INDEX] [--subject K]
    ketasim export-petab [FILE] -o DIR [--cohort NAME|INDEX] [--estimate P1,P2] [--readouts R]
    ketasim calibrate DATA.tsv --condition ID=SCENARIO.toml --fit NAME:LO:HI [--starts 4]
                      [--out DIR]
    ketasim dashboard [--host 127.0.0.1] [--port 8080] [--max-subjects 1000] [--open]

A user error (a bad scenario, an unknown drug, an output directory that is in the way) is
one line on stderr and exit status 2, never a traceback; nothing is written then.
"""

import importlib

from ketasim.cli.app import app, main

# --help lists them in this order; importing a command module registers its commands on app
COMMAND_MODULES = ("run", "studies", "sensitivity", "calibrate", "catalog", "validate",
                   "export", "dashboard")
for _name in COMMAND_MODULES:
    importlib.import_module(f"ketasim.cli.{_name}")

__all__ = ["COMMAND_MODULES", "app", "main"]
