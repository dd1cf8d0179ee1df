"""Finding an activity for a caller, and who organizes it: the checks every capability
makes before it acts on an activity."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.events.activities.domain import Activity, Visibility, activity_not_found
from services.events.activities.store import ActivityRepository
from services.kit.access import Role, Standing
from services.kit.auth import Identity
from services.kit.errors import PermissionDenied


def sees(activity: Activity, standing: Standing, caller: Identity) -> bool:
    """Members-only activities are for members (and operators)."""
    if activity.visibility is Visibility.COMMUNITY or caller.operator:
        return True
    return standing.role is not None or activity.organized_by(caller.user_id)


def organizes(activity: Activity, standing: Standing, caller: Identity) -> bool:
    """Its host and speakers, the community's moderators and above, and operators."""
    if caller.operator or (standing.role is not None and standing.role >= Role.MODERATOR):
        return True
    return standing.role is not None and activity.organized_by(caller.user_id)


async def visible_activity(
    session: AsyncSession,
    community_id: str,
    activity_id: str,
    standing: Standing,
    caller: Identity,
    *,
    for_update: bool = False,
) -> Activity:
    activity = await ActivityRepository(session).get(
        community_id, activity_id, for_update=for_update
    )
    if activity is None or not sees(activity, standing, caller):
        # Looked up within the community: another community's activity is simply not found.
        raise activity_not_found(activity_id, community_id)
    return activity


async def organized_activity(
    session: AsyncSession,
    community_id: str,
    activity_id: str,
    standing: Standing,
    caller: Identity,
    what: str,
) -> Activity:
    """The activity, locked, for a change only its organizers may make (`what`)."""
    activity = await visible_activity(
        session, community_id, activity_id, standing, caller, for_update=True
    )
    require_organizer(activity, standing, caller, what)
    return activity


def require_organizer(activity: Activity, standing: Standing, caller: Identity, what: str) -> None:
    if not organizes(activity, standing, caller):
        # Worded as the kit's role refusals are: what is needed, where, and what you are.
        held = standing.role.name.lower() if standing.role else "not a member"
        raise PermissionDenied(
            f"{what} is for the activity's host and speakers, else needs the moderator role "
            f"or higher in community {activity.community_id}; you are {held}"
        )
