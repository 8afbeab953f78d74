"""Device time without a card: a cost model that reads the plan, the placement and the run.

It never changes them. `boards` holds the devices' figures, `formulas` TT-NN's own ideal
formulas, `constants` the one table of what those ideals leave out (with provenance), `nodes`
prices one node, `model` adds a run up (device, host, transfers, dispatch) and ranks its fallbacks.
"""

from fxport.cost.boards import BOARDS, Board, board_for
from fxport.cost.model import Estimate, estimate_run

__all__ = ["BOARDS", "Board", "board_for", "Estimate", "estimate_run"]
