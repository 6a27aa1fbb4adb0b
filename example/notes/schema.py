"""The GraphQL schema: notes in postgres, plus a `ping` that touches nothing."""

import strawberry
import strawberry_django
from django.core.exceptions import ValidationError
from strawberry import auto

from notes.models import Note


@strawberry_django.type(Note, name="Note")
class NoteType:
    id: auto
    title: auto
    body: auto
    created_at: auto


@strawberry.type
class Query:
    @strawberry.field(description='Always "pong"; touches neither the database nor the cache.')
    def ping(self) -> str:
        return "pong"

    @strawberry.field(description="Notes, newest first; `limit` caps how many.")
    async def notes(self, limit: int | None = None) -> list[NoteType]:
        queryset = Note.objects.order_by("-created_at", "-id")
        if limit is not None:
            queryset = queryset[: max(limit, 0)]
        return [note async for note in queryset]

    @strawberry.field(description="One note by id, or null.")
    async def note(self, id: strawberry.ID) -> NoteType | None:
        try:
            pk = int(id)
        except ValueError:
            return None
        return await Note.objects.filter(pk=pk).afirst()


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Create a note and return it with its id.")
    async def create_note(self, title: str, body: str) -> NoteType:
        note = Note(title=title, body=body)
        try:
            # No uniqueness or constraint checks: they would query the database synchronously.
            note.full_clean(validate_unique=False, validate_constraints=False)
        except ValidationError as exc:
            problems = "; ".join(f"{field}: {' '.join(messages)}" for field, messages in exc.message_dict.items())
            raise ValueError(problems) from None
        await note.asave()
        return note


schema = strawberry.Schema(query=Query, mutation=Mutation)
