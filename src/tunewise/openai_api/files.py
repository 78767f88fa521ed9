"""Files and Uploads as OpenAI shapes them (`openai.types.FileObject`, `Upload`, `UploadPart`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

FilePurpose = Literal["assistants", "assistants_output", "batch", "batch_output", "fine-tune", "fine-tune-results",
                      "vision", "user_data"]
# What a client may upload here: training data (fine-tune) and general files; the rest are OpenAI's own.
UPLOAD_PURPOSES = ("fine-tune", "user_data")


class FileObject(BaseModel):
    id: str
    bytes: int
    created_at: int
    filename: str
    object: Literal["file"] = "file"
    purpose: FilePurpose
    status: Literal["uploaded", "processed", "error"]
    expires_at: int | None = None
    status_details: str | None = None


class FileDeleted(BaseModel):
    id: str
    deleted: bool
    object: Literal["file"] = "file"


class FileList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FileObject]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool


class ExpiresAfter(BaseModel):
    model_config = ConfigDict(extra="forbid")
    anchor: Literal["created_at"]
    seconds: int = Field(ge=3600, le=2_592_000)


class UploadCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    bytes: int = Field(ge=1, description="Size of the whole file in bytes.")
    filename: str = Field(min_length=1, max_length=255)
    mime_type: str = Field(min_length=1, max_length=100)
    purpose: str
    expires_after: ExpiresAfter | None = None


class UploadComplete(BaseModel):
    model_config = ConfigDict(extra="forbid")
    part_ids: list[str] = Field(min_length=1, max_length=10_000)
    md5: str | None = Field(None, max_length=64)


class Upload(BaseModel):
    id: str
    bytes: int
    created_at: int
    expires_at: int
    filename: str
    object: Literal["upload"] = "upload"
    purpose: str
    status: Literal["pending", "completed", "cancelled", "expired"]
    file: FileObject | None = None


class UploadPart(BaseModel):
    id: str
    created_at: int
    object: Literal["upload.part"] = "upload.part"
    upload_id: str
