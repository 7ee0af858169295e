"""Hardware layer (installed as ``recorder.board``): record button, LEDs, beeper and dock sense.

Built on gpiozero with the pin factory injected. The gesture and indicator logic are pure,
clock-driven state machines (`gestures`, `indicator_plan`); `devices` wires them to gpiozero;
`boards` offers the GPIO, terminal and scripted boards behind one protocol.
"""

from .boards import Board, GpioBoard, ScriptedBoard, ScriptStep, TerminalBoard
from .devices import AuxTrigger, DockSense, Indicators, RecordButton
from .events import BoardEvent, BoardEventKind
from .gestures import GestureMachine
from .indicator_plan import IndicatorPlan, IndicatorStatus, Levels, StealthNotAllowedError
from .loop import BoardLoop, ManualClock
from .patterns import Condition, Cue, Mode, Pattern, pattern_table_markdown
from .rpi_checks import CheckStatus, RpiCheck, rpi_checks
from .settings import BoardSettings, BoardSettingsError

__all__ = [
    "AuxTrigger", "Board", "BoardEvent", "BoardEventKind", "BoardLoop", "BoardSettings",
    "BoardSettingsError", "CheckStatus", "Condition", "Cue", "DockSense", "GestureMachine",
    "GpioBoard", "IndicatorPlan", "IndicatorStatus", "Indicators", "Levels", "ManualClock", "Mode",
    "Pattern", "RecordButton", "RpiCheck", "ScriptStep", "ScriptedBoard", "StealthNotAllowedError",
    "TerminalBoard", "pattern_table_markdown", "rpi_checks",
]
