"""Ports: what the domain needs from the outside world, as small role-shaped Protocols (one
module per aggregate), and the records they carry (`records`).

Every Protocol of the domain lives in this package; adapters implement one or more roles.
"""

from aftercare.domain.ports.devices import (
    DeviceDirectory,
)
from aftercare.domain.ports.diagnostics import (
    CancelPublisher,
    CommandPublisher,
    DiagnosticRequests,
    DiagnosticResults,
    DiagnosticsDue,
    DiagnosticsStore,
)
from aftercare.domain.ports.dispatch import (
    DispatchMark,
    DispatchMarks,
    DispatchState,
    LeadTimes,
    WaitingTickets,
)
from aftercare.domain.ports.errors import (
    CodeAlreadyOpen,
    ConcurrentUpdate,
    DuplicateFault,
    LockConflict,
    TicketNotFound,
)
from aftercare.domain.ports.escalation import (
    DutyPager,
    EscalationStore,
)
from aftercare.domain.ports.field import (
    BookingConflict,
    BookingNotFound,
    BookingReads,
    BusyInterval,
    Calendar,
    CalendarReads,
    EngineerDirectory,
    SlotTaken,
    TicketAlreadyBooked,
)
from aftercare.domain.ports.notifications import (
    Bundles,
    ChannelSender,
    DueQueues,
    NotificationLedger,
    NotificationStore,
    ProfileSource,
    SurveySchedule,
)
from aftercare.domain.ports.parked import (
    ParkedArchive,
    ParkedMessage,
    ParkedStore,
    Redelivery,
    ReplayFailed,
)
from aftercare.domain.ports.records import (
    ClassificationPlan,
    CorrelationPlan,
    CustomerRecord,
    DeviceRecord,
    IntakeContext,
    LastResolution,
    NewTicketPlan,
    OpenContext,
    OpenLock,
    PartsChange,
    RequestMark,
    TicketDetail,
)
from aftercare.domain.ports.stock import (
    ExpiredHolds,
    InventoryWriter,
    LowStockSink,
    StockHistory,
)
from aftercare.domain.ports.surveys import (
    SurveyStore,
)
from aftercare.domain.ports.tasks import (
    TaskAlreadyDone,
    TaskNotFound,
    TaskStore,
)
from aftercare.domain.ports.tickets import (
    IntakeStore,
    PartsContext,
    PartsHolds,
    RaisedTickets,
    StatusChanges,
    TicketLookup,
    TicketReader,
    TicketStore,
)
from aftercare.domain.ports.visits import (
    VisitTickets,
)

__all__ = [
    "BookingConflict",
    "BookingNotFound",
    "BookingReads",
    "Bundles",
    "BusyInterval",
    "Calendar",
    "CalendarReads",
    "CancelPublisher",
    "ChannelSender",
    "ClassificationPlan",
    "CodeAlreadyOpen",
    "CommandPublisher",
    "ConcurrentUpdate",
    "CorrelationPlan",
    "CustomerRecord",
    "DeviceDirectory",
    "DeviceRecord",
    "DiagnosticRequests",
    "DiagnosticResults",
    "DiagnosticsDue",
    "DiagnosticsStore",
    "DispatchMark",
    "DispatchMarks",
    "DispatchState",
    "DueQueues",
    "DuplicateFault",
    "DutyPager",
    "EngineerDirectory",
    "EscalationStore",
    "ExpiredHolds",
    "IntakeContext",
    "IntakeStore",
    "InventoryWriter",
    "LastResolution",
    "LeadTimes",
    "LockConflict",
    "LowStockSink",
    "NewTicketPlan",
    "NotificationLedger",
    "NotificationStore",
    "OpenContext",
    "OpenLock",
    "ParkedArchive",
    "ParkedMessage",
    "ParkedStore",
    "PartsChange",
    "PartsContext",
    "PartsHolds",
    "ProfileSource",
    "RaisedTickets",
    "Redelivery",
    "ReplayFailed",
    "RequestMark",
    "SlotTaken",
    "StatusChanges",
    "StockHistory",
    "SurveySchedule",
    "SurveyStore",
    "TaskAlreadyDone",
    "TaskNotFound",
    "TaskStore",
    "TicketAlreadyBooked",
    "TicketDetail",
    "TicketLookup",
    "TicketNotFound",
    "TicketReader",
    "TicketStore",
    "VisitTickets",
    "WaitingTickets",
]
