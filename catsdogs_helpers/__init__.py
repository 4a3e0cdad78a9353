"""Helpers for the cats vs. dogs study: a CNN from scratch against transfer learning.

The notebook `transfer_learning.ipynb` tells the story; these modules do the work, in pipeline order: `config` ->
`runtime` -> `photos`/`data` -> `models` -> `training`/`features` -> `evaluation`/`metrics` ->
`results`/`plots`/`report`, and `study` runs them as stages (`run_study` runs them all); `cli` is the command line.
Importing the package changes no global state.
"""

__version__ = "0.4.2"
